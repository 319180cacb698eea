// Runs the classifier over every case of the real-world corpus
// (tests/data/crashlogs/public.jsonl, kept in the project): each result must
// be in the case's `accept` list. Prints every decision and the accuracy per
// category.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "classifier/crash_classifier.h"

namespace mw {
namespace {

std::string CorpusPath() { return MW_CRASH_CORPUS; }

struct Case {
  std::string id;
  std::string category;
  std::vector<std::string> accept;
  CrashEvidence evidence;
  std::string log;
};

std::vector<Case> ReadCorpus(const std::string& path) {
  std::vector<Case> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line);
    Case c;
    c.id = j.at("id").get<std::string>();
    c.category = j.at("category").get<std::string>();
    c.accept = j.at("accept").get<std::vector<std::string>>();
    c.log = j.at("log").get<std::string>();
    // An exit code as the report gave it: a number, or a string in any form
    // loaders print (hex, unsigned 64-bit: ParseExitCode).
    if (j.contains("exit_code") && j["exit_code"].is_number_integer()) c.evidence.exit_code = j["exit_code"].get<int64_t>();
    if (j.contains("exit_code") && j["exit_code"].is_string()) {
      c.evidence.exit_code = ParseExitCode(j["exit_code"].get<std::string>());
    }
    if (j.contains("signal") && j["signal"].is_string()) c.evidence.signal = j["signal"].get<std::string>();
    cases.push_back(std::move(c));
  }
  return cases;
}

TEST(CrashCorpusTest, EveryCaseIsAcceptable) {
  std::string path = CorpusPath();
  std::vector<Case> cases = ReadCorpus(path);
  ASSERT_FALSE(cases.empty()) << "no corpus at " << path;
  Result<CrashClassifier> classifier = CrashClassifier::Load("");
  ASSERT_TRUE(classifier.ok()) << classifier.status().ToString();

  struct Tally {
    int total = 0, exact = 0, acceptable = 0;
  };
  std::map<std::string, Tally> tallies;
  Tally all;
  for (Case& c : cases) {
    c.evidence.output = c.log;
    Classification result = classifier->Classify(c.evidence);
    std::string got(CrashCategoryName(result.category));
    bool exact = got == c.category;
    bool acceptable = std::find(c.accept.begin(), c.accept.end(), got) != c.accept.end();
    Tally& t = tallies[c.category];
    for (Tally* tally : {&t, &all}) {
      tally->total++;
      tally->exact += exact;
      tally->acceptable += acceptable;
    }
    std::cout << (exact ? "  ok   " : acceptable ? "  acc  " : "  FAIL ") << c.id << " expected=" << c.category
              << " got=" << got << " [" << result.pattern_id << "] " << result.summary << "\n";
    EXPECT_TRUE(acceptable) << c.id << ": got " << got << " (" << result.pattern_id << ": " << result.summary
                            << "), line: " << result.matched_line;
  }
  std::cout << "\n" << std::left << std::setw(20) << "category" << std::right << std::setw(7) << "cases"
            << std::setw(9) << "exact" << std::setw(13) << "acceptable" << "\n";
  auto row = [](const std::string& name, const Tally& t) {
    auto pct = [&](int n) { return t.total == 0 ? 0.0 : 100.0 * n / t.total; };
    std::cout << std::left << std::setw(20) << name << std::right << std::setw(7) << t.total << std::setw(4)
              << t.exact << std::setw(4) << std::fixed << std::setprecision(0) << pct(t.exact) << "%"
              << std::setw(7) << t.acceptable << std::setw(5) << pct(t.acceptable) << "%\n";
  };
  for (const auto& [name, tally] : tallies) row(name, tally);
  row("all", all);
}

}  // namespace
}  // namespace mw
