// Model weights <-> safetensors, named exactly like the equivalent PyTorch module's state_dict
// ("encoder.1.weight", "encoder.3.running_var", "encoder.3.num_batches_tracked", ...). Optimizer state, when
// saved, goes under "optimizer.*" keys, which PyTorch's load_state_dict(strict=True) would reject: filter them out.
#pragma once
#include <string>

#include "core/model.hpp"
#include "core/optim.hpp"
#include "core/safetensors.hpp"

namespace aep {

// With `borrow` the float tensors borrow the model's and optimizer's memory (StTensor::view) instead of copying it:
// use the result before either changes.
SafeTensors model_state(const Model& m, const Optimizer* opt = nullptr, bool borrow = false);
// Checks names, shapes, dtypes and finiteness of every tensor before changing anything: on error the model
// and optimizer are untouched. `name` (the file) prefixes error messages.
void load_state(Model& m, const SafeTensors& st, const std::string& name, Optimizer* opt = nullptr);

void save_weights(const std::string& path, const Model& m, const Optimizer* opt = nullptr);
void load_weights(const std::string& path, Model& m, Optimizer* opt = nullptr);

}  // namespace aep
