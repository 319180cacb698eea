// app/model_read.h: one read of a model's row on the request path, with what
// is derived from it once (issue 20): the validated load_config and whether
// the incompatible refusal was decided on it.
//
// Contract: a /v1 request (Admission::Begin) or an explicit load
// (ModelService::Load) reads the row once (Read) and passes this down to
// LoadDirector::Load and its job. The row is read again only where it may
// have changed: the job after the caller waited (for a slot, in the load
// queue) when MayHaveChanged(), after a retest mark, after a revert.
// Refresh() keeps the validation when the engine and load_config are
// unchanged, and the refusal decision when the compatibility_status is.
// A value: copy it freely; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "common/status.h"
#include "loadconfig/loadconfig.h"
#include "registry/registry.h"

namespace mw::app {

struct ModelRead {
  explicit ModelRead(ModelRecord read);  // validates read.load_config for read.engine
  // The row of `name` (kNotFound), with the registry's write count before it.
  static Result<ModelRead> Read(Registry& registry, std::string_view name);

  // Whether the row may differ from the registry's now: a write began since
  // it was read, or other servers write too (a shared registry).
  bool MayHaveChanged(const Registry& registry) const;
  // Reads the row again (kNotFound if it is gone) and Refresh()es with it.
  Status ReadAgain(Registry& registry);
  // `now`, the same model read again: validated only if its engine or
  // load_config changed; the refusal decided again only if its status did.
  void Refresh(ModelRecord now, uint64_t writes_before_now);
  bool incompatible() const { return row.compatibility_status == CompatStatus::kIncompatible; }

  ModelRecord row;
  Result<loadconfig::LoadConfig> config;  // ValidateLoadConfig(row.engine, row.load_config)
  int validations = 1;                    // how many times `config` was computed (for tests)
  // The caller decided the incompatible refusal on this row, with the force
  // of this load, and did not refuse: the load does not decide it again.
  bool refusal_checked = false;
  // Registry::WriteCount() before the read; unset: unknown (may have changed).
  std::optional<uint64_t> writes_before;
};

}  // namespace mw::app
