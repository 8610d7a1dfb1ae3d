// Code for other frameworks, written from a preset: a PyTorch script and a Keras (TensorFlow 2.x) script that build
// the same model, load the engine's .safetensors weights, evaluate on MNIST's test digits and train.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/preset.hpp"

namespace aep {

// A PyTorch script (torch only: it reads MNIST's IDX files and safetensors itself) whose module's state_dict has the
// engine's names, so our weight files load strictly. weights: the file it loads by default ("" for none).
std::string pytorch_code(const Preset& p, const std::string& weights = "");

// The Keras model as data: parts (encoder, mu, logvar, decoder), each a list of Keras layers with their class,
// config and, per Keras weight, the safetensors tensor it comes from and the layout changes (transpose, CHW -> HWC
// feature order) applied in order. keras_code() is written from it and tests/interop builds the model from it in
// TensorFlow.js, so both use one mapping. Throws std::runtime_error for a model Keras cannot express exactly.
nlohmann::json keras_plan(const Preset& p);

// A Keras script (channels-last) built from keras_plan(p); weights as in pytorch_code.
std::string keras_code(const Preset& p, const std::string& weights = "");

}  // namespace aep
