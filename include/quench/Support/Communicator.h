//===- Communicator.h - processes compiling one model ---------*- C++ -*-===//
//
// The few collective operations that let several processes share the
// splittable compile stages (docs/scaling.md, "Beyond one machine"):
// calibration splits its samples across processes and all-reduces the
// statistics; weight quantization splits its layers and streams the packed
// results to rank 0, which alone writes the outputs. The library codes
// against this interface only: the plain driver uses the single-process
// implementation below (every operation a no-op), quench-compile-mpi an
// MPI one (tools/quench-compile/MPICommunicator.cpp), so that neither the
// library nor quench-compile links libmpi.
//
// Every collective must be called by every process in the same order. A
// process that fails between two collectives reports it at the next
// agreement point (agree), so that all processes stop together with one
// message instead of waiting on each other. Plain C++, no LLVM or MLIR.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_SUPPORT_COMMUNICATOR_H
#define QUENCH_SUPPORT_COMMUNICATOR_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace quench {

class Communicator {
public:
  enum class Type { F32, F64, U64, I64 };
  enum class Op { Sum, Min, Max };

  virtual ~Communicator() = default;

  /// This process's index in [0, size()); rank 0 writes the outputs.
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// Element-wise reduction of `n` values of `type` over all processes, in
  /// place: every process gets the result.
  void allReduce(void *data, size_t n, Type type, Op op);
  void allReduceSum(double *d, size_t n) {
    allReduce(d, n, Type::F64, Op::Sum);
  }
  void allReduceSum(uint64_t *d, size_t n) {
    allReduce(d, n, Type::U64, Op::Sum);
  }
  void allReduceMin(float *d, size_t n) { allReduce(d, n, Type::F32, Op::Min); }
  void allReduceMax(float *d, size_t n) { allReduce(d, n, Type::F32, Op::Max); }
  void allReduceMax(double *d, size_t n) {
    allReduce(d, n, Type::F64, Op::Max);
  }
  void allReduceMin(int64_t *d, size_t n) {
    allReduce(d, n, Type::I64, Op::Min);
  }

  /// `bytes` of process `root` to every process.
  void broadcast(std::string &bytes, int root);

  /// Starts sending `bytes` to process `dest` under `tag` and returns; at
  /// most one send is in flight per process (a second waits for the first
  /// to be received).
  void send(int dest, int tag, std::string bytes);
  /// Waits until this process's sends are received.
  void flushSends();
  /// A message under `tag` from any process, if one has arrived (`wait`:
  /// waits for one); `source` is the sender's rank.
  bool receive(int tag, int &source, std::string &bytes, bool wait);
  /// The tags of the library's messages.
  enum Tag { kQuantizedLayerTag = 1, kSummaryTag = 2 };

  /// The agreement point: every process passes its own error ("" for none);
  /// every process gets the message of the lowest-ranked process that
  /// failed, or "" when none did.
  std::string agree(const std::string &localError);

  /// Payload bytes this process has sent and received (collectives count
  /// what it contributed and what it got back).
  uint64_t bytesSent() const { return bytesSent_; }
  uint64_t bytesReceived() const { return bytesReceived_; }

protected:
  virtual void allReduceImpl(void *data, size_t n, Type type, Op op) = 0;
  virtual void broadcastImpl(std::string &bytes, int root) = 0;
  virtual void sendImpl(int dest, int tag, std::string bytes) = 0;
  virtual void flushSendsImpl() = 0;
  virtual bool receiveImpl(int tag, int &source, std::string &bytes,
                           bool wait) = 0;

private:
  uint64_t bytesSent_ = 0, bytesReceived_ = 0;
};

/// One process: reductions and broadcasts leave the data as it is; there is
/// nobody to send to.
class SingleProcessCommunicator final : public Communicator {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }

protected:
  void allReduceImpl(void *, size_t, Type, Op) override {}
  void broadcastImpl(std::string &, int) override {}
  void sendImpl(int, int, std::string) override;
  void flushSendsImpl() override {}
  bool receiveImpl(int, int &, std::string &, bool) override { return false; }
};

/// Size in bytes of one element of `type`.
size_t sizeOf(Communicator::Type type);

} // namespace quench

#endif // QUENCH_SUPPORT_COMMUNICATOR_H
