// run_tier: load one tier library with TVM's runtime alone and run its "main" on N samples.
//
//   run_tier [-n N] MODEL.so OUT_PREFIX INPUT...     INPUT = path:dtype:d0xd1x...   (raw little-endian)
//
// Each input file holds N samples of the given shape back to back (N = 1 without -n). Writes
// OUT_PREFIX.<i>.bin per output (N samples back to back) and prints one line per output:
// "<i> <dtype> <d0xd1...>" (the shape of one sample).
// Used by edgepart to run AArch64 tiers under qemu-user (it needs only libtvm_runtime + libtvm_ffi).
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

struct CpuAlloc {
  void AllocData(DLTensor* t) {
    size_t bytes = (t->dtype.bits * t->dtype.lanes + 7) / 8;
    for (int i = 0; i < t->ndim; ++i) bytes *= t->shape[i];
    t->data = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

static DLDataType ParseDtype(const std::string& name) {
  if (name == "float32") return {kDLFloat, 32, 1};
  if (name == "float16") return {kDLFloat, 16, 1};
  if (name == "int64") return {kDLInt, 64, 1};
  if (name == "int32") return {kDLInt, 32, 1};
  if (name == "int8") return {kDLInt, 8, 1};
  if (name == "uint8") return {kDLUInt, 8, 1};
  if (name == "bool") return {kDLBool, 8, 1};
  throw std::runtime_error("unsupported dtype " + name);
}

static std::string DtypeName(DLDataType t) {
  if (t.code == kDLFloat) return "float" + std::to_string(t.bits);
  if (t.code == kDLInt) return "int" + std::to_string(t.bits);
  if (t.code == kDLUInt) return "uint" + std::to_string(t.bits);
  return "bool";
}

static size_t Bytes(const DLTensor* t) {
  size_t bytes = (t->dtype.bits * t->dtype.lanes + 7) / 8;
  for (int i = 0; i < t->ndim; ++i) bytes *= t->shape[i];
  return bytes;
}

struct Input {
  std::string path;
  std::ifstream stream;
  ffi::Tensor tensor;
};

static void OpenInput(const std::string& spec, Input* input) {
  size_t a = spec.find(':'), b = spec.find(':', a + 1);
  std::string dtype = spec.substr(a + 1, b - a - 1), dims = spec.substr(b + 1);
  input->path = spec.substr(0, a);
  std::vector<int64_t> shape;
  std::stringstream parts(dims);
  for (std::string d; std::getline(parts, d, 'x');) shape.push_back(std::stoll(d));
  input->tensor = ffi::Tensor::FromNDAlloc(CpuAlloc(), ffi::ShapeView(shape.data(), shape.size()),
                                           ParseDtype(dtype), DLDevice{kDLCPU, 0});
  input->stream.open(input->path, std::ios::binary);
}

static void ReadSample(Input* input) {  // the next sample, into the same tensor
  input->stream.read(static_cast<char*>(input->tensor.data_ptr()), Bytes(input->tensor.GetDLTensorPtr()));
  if (!input->stream) throw std::runtime_error("cannot read " + input->path);
}

static void Collect(const ffi::Any& value, std::vector<ffi::Tensor>* out) {
  if (auto tensor = value.as<ffi::Tensor>()) {
    out->push_back(*tensor);
  } else if (auto array = value.as<ffi::Array<ffi::Any>>()) {
    for (const ffi::Any& item : *array) Collect(item, out);
  } else {
    throw std::runtime_error("unexpected output type");
  }
}

int main(int argc, char** argv) {
  long samples = 1;
  if (argc > 2 && std::string(argv[1]) == "-n") {
    samples = std::stol(argv[2]);
    argc -= 2;
    argv += 2;
  }
  if (argc < 3) {
    std::cerr << "usage: run_tier [-n N] MODEL.so OUT_PREFIX path:dtype:shape...\n";
    return 2;
  }
  try {
    ffi::Module lib = ffi::Module::LoadFromFile(argv[1]);
    ffi::Module vm = lib->GetFunction("vm_load_executable").value()().cast<ffi::Module>();
    vm->GetFunction("vm_initialization").value()(static_cast<int>(kDLCPU), 0, 2);  // pooled allocator
    ffi::Function main_fn = vm->GetFunction("main").value();
    std::vector<Input> inputs(argc - 3);
    for (int i = 3; i < argc; ++i) OpenInput(argv[i], &inputs[i - 3]);
    std::vector<std::ofstream> files;
    std::vector<ffi::Tensor> outputs;
    for (long n = 0; n < samples; ++n) {
      std::vector<ffi::AnyView> args;
      for (Input& input : inputs) {
        ReadSample(&input);
        args.push_back(input.tensor);
      }
      ffi::Any result;
      main_fn.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
      outputs.clear();
      Collect(result, &outputs);
      for (size_t i = files.size(); i < outputs.size(); ++i)
        files.emplace_back(std::string(argv[2]) + "." + std::to_string(i) + ".bin", std::ios::binary);
      for (size_t i = 0; i < outputs.size(); ++i)
        files[i].write(static_cast<const char*>(outputs[i].GetDLTensorPtr()->data), Bytes(outputs[i].GetDLTensorPtr()));
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      const DLTensor* t = outputs[i].GetDLTensorPtr();
      std::cout << i << " " << DtypeName(t->dtype) << " ";
      for (int d = 0; d < t->ndim; ++d) std::cout << (d ? "x" : "") << t->shape[d];
      std::cout << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "run_tier: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
