// A restricted unpickler for torch.save archives. LibTorch's own (torch::pickle_load) turns
// collections.OrderedDict into None, so it cannot read `torch.save(model.state_dict())`, the
// most common checkpoint there is. This one understands exactly the opcodes and globals that
// torch.save emits for containers of tensors, and refuses everything else.
#include "detail/torch_pickle.h"

#include "detail/torch_archive.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <map>
#include <memory>

#include "stunt/core/error.h"

namespace fs = std::filesystem;

namespace stunt::io::detail {
namespace {

struct Object;
using Ref = std::shared_ptr<Object>;

/// A Python value as far as torch.save state dicts need them.
struct Object {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // String, or "module.name" of a Global
  std::vector<Ref> items;
  std::vector<std::pair<Ref, Ref>> entries;  // Dict, in insertion order
  at::Tensor tensor;                         // Tensor, or the flat bytes of a Storage
};

Ref make(Object::Kind kind) {
  auto o = std::make_shared<Object>();
  o->kind = kind;
  return o;
}

// Nesting deeper than this is no state dict; the limit keeps hostile files off the stack.
constexpr int kMaxFlattenDepth = 100;

c10::optional<at::ScalarType> storage_dtype(const std::string& global) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"torch.FloatStorage", at::kFloat},
      {"torch.DoubleStorage", at::kDouble},
      {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.LongStorage", at::kLong},
      {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},
      {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool},
      {"torch.ComplexFloatStorage", at::kComplexFloat},
      {"torch.ComplexDoubleStorage", at::kComplexDouble},
      {"torch.UInt16Storage", at::kUInt16},
      {"torch.UInt32Storage", at::kUInt32},
      {"torch.UInt64Storage", at::kUInt64},
      {"torch.Float8_e4m3fnStorage", at::kFloat8_e4m3fn},
      {"torch.Float8_e5m2Storage", at::kFloat8_e5m2},
      {"torch.Float8_e4m3fnuzStorage", at::kFloat8_e4m3fnuz},
      {"torch.Float8_e5m2fnuzStorage", at::kFloat8_e5m2fnuz},
      {"torch.Float8_e8m0fnuStorage", at::kFloat8_e8m0fnu},
      {"torch.UntypedStorage", at::kByte},
      {"torch.storage.UntypedStorage", at::kByte}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) return c10::nullopt;
  return it->second;
}

// torch.<dtype> globals, which _rebuild_tensor_v3 uses to type an untyped (byte) storage.
c10::optional<at::ScalarType> dtype_global(const std::string& global) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"torch.float32", at::kFloat},
      {"torch.float", at::kFloat},
      {"torch.float64", at::kDouble},
      {"torch.double", at::kDouble},
      {"torch.float16", at::kHalf},
      {"torch.half", at::kHalf},
      {"torch.bfloat16", at::kBFloat16},
      {"torch.int64", at::kLong},
      {"torch.long", at::kLong},
      {"torch.int32", at::kInt},
      {"torch.int", at::kInt},
      {"torch.int16", at::kShort},
      {"torch.short", at::kShort},
      {"torch.int8", at::kChar},
      {"torch.uint8", at::kByte},
      {"torch.bool", at::kBool},
      {"torch.uint16", at::kUInt16},
      {"torch.uint32", at::kUInt32},
      {"torch.uint64", at::kUInt64},
      {"torch.complex64", at::kComplexFloat},
      {"torch.complex128", at::kComplexDouble},
      {"torch.float8_e4m3fn", at::kFloat8_e4m3fn},
      {"torch.float8_e5m2", at::kFloat8_e5m2},
      {"torch.float8_e4m3fnuz", at::kFloat8_e4m3fnuz},
      {"torch.float8_e5m2fnuz", at::kFloat8_e5m2fnuz},
      {"torch.float8_e8m0fnu", at::kFloat8_e8m0fnu},
      {"torch.float4_e2m1fn_x2", at::kFloat4_e2m1fn_x2}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) return c10::nullopt;
  return it->second;
}

class Unpickler {
 public:
  Unpickler(const fs::path& path, caffe2::serialize::PyTorchStreamReader& archive,
            const uint8_t* data, size_t size)
      : source_(path.string()), archive_(archive), data_(data), size_(size) {}

  Ref run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80:
          byte();
          break;  // PROTO
        case 0x95:
          bytes(8);
          break;  // FRAME (protocol 4)
        case '.':
          return pop();  // STOP
        case '(':
          marks_.push_back(stack_.size());
          break;  // MARK
        case 'N':
          push(make(Object::Kind::None));
          break;
        case 0x88:
          push(boolean(true));
          break;  // NEWTRUE
        case 0x89:
          push(boolean(false));
          break;  // NEWFALSE
        case 'K':
          push(integer(byte()));
          break;  // BININT1
        case 'M':
          push(integer(uint_le(2)));
          break;  // BININT2
        case 'J':
          push(integer(static_cast<int32_t>(uint_le(4))));
          break;  // BININT
        case 0x8a:
          push(long1());
          break;  // LONG1
        case 'G':
          push(real());
          break;  // BINFLOAT
        case 'X':
          push(string(uint_le(4)));
          break;  // BINUNICODE
        case 0x8c:
          push(string(byte()));
          break;  // SHORT_BINUNICODE
        case 'U':
          push(string(byte()));
          break;  // SHORT_BINSTRING
        case 'T':
          push(string(uint_le(4)));
          break;  // BINSTRING
        case ')':
          push(make(Object::Kind::Tuple));
          break;  // EMPTY_TUPLE
        case ']':
          push(make(Object::Kind::List));
          break;  // EMPTY_LIST
        case '}':
          push(make(Object::Kind::Dict));
          break;  // EMPTY_DICT
        case 't':
          push(tuple(pop_mark()));
          break;  // TUPLE
        case 0x85:
          push(tuple(pop_n(1)));
          break;  // TUPLE1
        case 0x86:
          push(tuple(pop_n(2)));
          break;  // TUPLE2
        case 0x87:
          push(tuple(pop_n(3)));
          break;     // TUPLE3
        case 'l': {  // LIST
          auto list = make(Object::Kind::List);
          list->items = pop_mark();
          push(list);
          break;
        }
        case 'a': {  // APPEND
          Ref item = pop();
          expect(top(), Object::Kind::List, "APPEND")->items.push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          auto& list = expect(top(), Object::Kind::List, "APPENDS")->items;
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          Ref value = pop();
          Ref key = pop();
          expect(top(), Object::Kind::Dict, "SETITEM")->entries.emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
          auto& dict = expect(top(), Object::Kind::Dict, "SETITEMS")->entries;
          for (size_t i = 0; i < items.size(); i += 2) dict.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'q':
          memo(byte());
          break;  // BINPUT
        case 'r':
          memo(uint_le(4));
          break;  // LONG_BINPUT
        case 0x94:
          memo(memo_.size());
          break;  // MEMOIZE
        case 'h':
          push(recall(byte()));
          break;  // BINGET
        case 'j':
          push(recall(uint_le(4)));
          break;     // LONG_BINGET
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line();
          push(global(module + "." + line()));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Ref name = pop();
          Ref module = pop();
          push(global(expect(module, Object::Kind::String, "STACK_GLOBAL")->text + "." +
                      expect(name, Object::Kind::String, "STACK_GLOBAL")->text));
          break;
        }
        case 'Q':
          push(persistent_load(pop()));
          break;     // BINPERSID
        case 'R': {  // REDUCE
          Ref args = pop();
          Ref callable = pop();
          push(reduce(callable, expect(args, Object::Kind::Tuple, "REDUCE")->items));
          break;
        }
        case 'b':
          pop();
          break;      // BUILD: attributes (an OrderedDict's _metadata) are not needed
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args), never for tensors
          pop();
          const Ref cls = pop();
          fail(str("it holds a Python object of type '",
                   cls->kind == Object::Kind::Global ? cls->text : "?",
                   "', which Stunt does not load (it never runs code from a checkpoint)"));
        }
        default:
          fail(str("pickle opcode 0x", std::hex, int(op), std::dec, " at offset ", pos_ - 1,
                   " is not used by torch.save for tensors"));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(str(source_, ": cannot read this torch.save archive: ", what,
                          "; Stunt reads containers of tensors only (no Python objects)"));
  }

  const uint8_t* bytes(size_t n) {
    if (n > size_ - pos_) fail("the pickle ends in the middle of an instruction");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t byte() { return *bytes(1); }
  uint64_t uint_le(int n) {
    const uint8_t* p = bytes(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string line() {
    const uint8_t* start = data_ + pos_;
    const void* end = std::memchr(start, '\n', size_ - pos_);
    if (end == nullptr) fail("unterminated GLOBAL name");
    const size_t n = static_cast<const uint8_t*>(end) - start;
    pos_ += n + 1;
    return std::string(reinterpret_cast<const char*>(start), n);
  }

  void push(Ref o) { stack_.push_back(std::move(o)); }
  Ref pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      fail("the pickle pops an empty stack");
    }
    Ref o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  Ref& top() {
    if (stack_.empty()) fail("the pickle reads an empty stack");
    return stack_.back();
  }
  std::vector<Ref> pop_n(size_t n) {
    std::vector<Ref> items(n);
    for (size_t i = n; i-- > 0;) items[i] = pop();
    return items;
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("the pickle closes a MARK it never opened");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(std::make_move_iterator(stack_.begin() + mark),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return items;
  }
  void memo(uint64_t index) {
    if (index > size_) fail("memo index out of range");  // at most one entry per byte
    memo_[index] = top();
  }
  Ref recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail(str("memo entry ", index, " is read before it is written"));
    return it->second;
  }
  const Ref& expect(const Ref& o, Object::Kind kind, const char* op) const {
    if (o->kind != kind) fail(str(op, " applied to the wrong kind of value"));
    return o;
  }

  static Ref boolean(bool v) {
    auto o = make(Object::Kind::Bool);
    o->integer = v;
    return o;
  }
  static Ref integer(int64_t v) {
    auto o = make(Object::Kind::Int);
    o->integer = v;
    return o;
  }
  Ref long1() {
    const uint8_t n = byte();
    if (n > 8) fail("integer wider than 64 bits");
    const uint8_t* p = bytes(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return integer(static_cast<int64_t>(v));
  }
  Ref real() {
    uint64_t bits = 0;
    const uint8_t* p = bytes(8);
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
    auto o = make(Object::Kind::Float);
    std::memcpy(&o->real, &bits, sizeof(double));
    return o;
  }
  Ref string(uint64_t n) {
    auto o = make(Object::Kind::String);
    const uint8_t* p = bytes(n);
    o->text.assign(reinterpret_cast<const char*>(p), n);
    return o;
  }
  static Ref tuple(std::vector<Ref> items) {
    auto o = make(Object::Kind::Tuple);
    o->items = std::move(items);
    return o;
  }
  static Ref global(std::string name) {
    auto o = make(Object::Kind::Global);
    o->text = std::move(name);
    return o;
  }

  // ('storage', <storage type>, key, location, numel) -> the storage's bytes as a flat tensor.
  Ref persistent_load(const Ref& pid) {
    const auto& t = expect(pid, Object::Kind::Tuple, "BINPERSID")->items;
    if (t.size() != 5 || t[0]->text != "storage" || t[1]->kind != Object::Kind::Global ||
        t[2]->kind != Object::Kind::String || t[4]->kind != Object::Kind::Int) {
      fail("unknown persistent id (expected a tensor storage)");
    }
    const auto dtype = storage_dtype(t[1]->text);
    if (!dtype) fail(str("storage type ", t[1]->text, " is not supported"));
    const std::string key = t[2]->text;
    if (auto it = storages_.find(key); it != storages_.end()) return it->second;
    const std::string record = "data/" + key;
    if (!archive_.hasRecord(record)) fail(str("storage '", key, "' has no data record"));
    auto [bytes, size] = archive_.getRecord(record);
    const int64_t numel = t[4]->integer;
    const size_t item = c10::elementSize(*dtype);
    if (numel < 0 || size != static_cast<size_t>(numel) * item) {
      fail(str("storage '", key, "' holds ", size, " bytes, not ", numel, " elements of ",
               c10::toString(*dtype)));
    }
    auto shared = std::make_shared<at::DataPtr>(std::move(bytes));
    auto storage = make(Object::Kind::Storage);
    storage->tensor = at::from_blob(
        shared->get(), {numel}, [shared](void*) {}, at::TensorOptions().dtype(*dtype));
    storages_[key] = storage;
    return storage;
  }

  std::vector<int64_t> ints(const Ref& o, const char* what) const {
    std::vector<int64_t> out;
    for (const auto& item : expect(o, Object::Kind::Tuple, what)->items) {
      if (item->kind != Object::Kind::Int) fail(str(what, " must hold integers"));
      out.push_back(item->integer);
    }
    return out;
  }

  Ref reduce(const Ref& callable, const std::vector<Ref>& args) {
    const std::string& name = expect(callable, Object::Kind::Global, "REDUCE")->text;
    if (name == "collections.OrderedDict") return make(Object::Kind::Dict);
    const bool v3 = name == "torch._utils._rebuild_tensor_v3";
    if (v3 || name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (args.size() < (v3 ? 7u : 4u) || args[0]->kind != Object::Kind::Storage ||
          args[1]->kind != Object::Kind::Int) {
        fail(str(name, " with unexpected arguments"));
      }
      at::Tensor storage = args[0]->tensor;
      if (v3) {  // an untyped (byte) storage typed by a torch.<dtype> argument
        const auto dtype =
            args[6]->kind == Object::Kind::Global ? dtype_global(args[6]->text) : c10::nullopt;
        if (!dtype) fail(str(name, ": unsupported dtype ", args[6]->text));
        if (storage.numel() % static_cast<int64_t>(c10::elementSize(*dtype)) != 0) {
          fail(str("a storage of ", storage.numel(), " bytes cannot hold ", c10::toString(*dtype)));
        }
        storage = storage.view(*dtype);
      }
      const int64_t offset = args[1]->integer;
      const auto sizes = ints(args[2], "tensor size");
      const auto strides = ints(args[3], "tensor stride");
      if (sizes.size() != strides.size()) fail("tensor size and stride differ in rank");
      // The view must stay inside its storage: the largest index it can reach.
      int64_t last = offset;
      bool empty = false;
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] < 0 || strides[i] < 0) fail("negative tensor size or stride");
        if (sizes[i] == 0) empty = true;
        if (sizes[i] > 0 && strides[i] > 0 &&
            (sizes[i] - 1) > (std::numeric_limits<int64_t>::max() - last) / strides[i]) {
          fail("tensor view overflows");
        }
        if (sizes[i] > 0) last += (sizes[i] - 1) * strides[i];
      }
      if (offset < 0 || (!empty && last >= storage.numel())) {
        fail(str("a tensor view reaches element ", last, " of a storage of ", storage.numel()));
      }
      auto o = make(Object::Kind::Tensor);
      o->tensor = storage.as_strided(sizes, strides, offset);
      return o;
    }
    if (name == "torch._utils._rebuild_parameter" ||
        name == "torch._utils._rebuild_parameter_with_state") {
      if (args.empty() || args[0]->kind != Object::Kind::Tensor)
        fail(str(name, " without a tensor"));
      return args[0];
    }
    fail(str("it holds a Python object of type '", name,
             "', which Stunt does not load (it never runs code from a checkpoint)"));
  }

  std::string source_;
  caffe2::serialize::PyTorchStreamReader& archive_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Ref> memo_;
  std::map<std::string, Ref> storages_;
};

void flatten(const Ref& o, const std::string& prefix, int depth, const std::string& source,
             std::vector<std::pair<std::string, at::Tensor>>& out) {
  if (depth > kMaxFlattenDepth) {
    throw FormatError(str(source, ": containers nested more than ", kMaxFlattenDepth, " deep"));
  }
  const auto join = [&](const std::string& key) {
    return prefix.empty() ? key : prefix + "." + key;
  };
  switch (o->kind) {
    case Object::Kind::Tensor:
      out.emplace_back(prefix.empty() ? "tensor" : prefix, o->tensor);
      break;
    case Object::Kind::Dict:
      for (const auto& [key, value] : o->entries) {
        if (key->kind == Object::Kind::String) {
          flatten(value, join(key->text), depth + 1, source, out);
        } else if (key->kind == Object::Kind::Int) {
          flatten(value, join(std::to_string(key->integer)), depth + 1, source, out);
        }
      }
      break;
    case Object::Kind::List:
    case Object::Kind::Tuple:
      for (size_t i = 0; i < o->items.size(); ++i) {
        flatten(o->items[i], join(std::to_string(i)), depth + 1, source, out);
      }
      break;
    default:
      break;  // numbers, strings, None: not tensors
  }
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> read_torch_save(const fs::path& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> archive;
  std::string pickle;
  try {
    archive = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path.string());
    auto [data, size] = archive->getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {
    throw FormatError(
        str(path.string(), ": not a readable torch.save archive (", first_line(e), ")"));
  }
  Unpickler unpickler(path, *archive, reinterpret_cast<const uint8_t*>(pickle.data()),
                      pickle.size());
  const Ref root = unpickler.run();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  flatten(root, "", 0, path.string(), tensors);
  return tensors;
}

}  // namespace stunt::io::detail
