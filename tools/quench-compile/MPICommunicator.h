//===- MPICommunicator.h - Communicator over MPI ----------------*- C++ -*-===//
//
// quench-compile-mpi's processes (docs/scaling.md, "Beyond one machine"):
// MPI_COMM_WORLD as a quench::Communicator. Only this driver links libmpi.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TOOLS_MPICOMMUNICATOR_H
#define QUENCH_TOOLS_MPICOMMUNICATOR_H

#include "quench/Support/Communicator.h"

#include <memory>

namespace quench {

class MPICommunicator final : public Communicator {
public:
  /// MPI_Init (a program runs one) ...
  MPICommunicator(int *argc, char ***argv);
  /// ... and MPI_Finalize.
  ~MPICommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  /// Processes of this job on this machine (threads are shared among them).
  int localSize() const { return localSize_; }

protected:
  void allReduceImpl(void *data, size_t n, Type type, Op op) override;
  void broadcastImpl(std::string &bytes, int root) override;
  void sendImpl(int dest, int tag, std::string bytes) override;
  void flushSendsImpl() override;
  bool receiveImpl(int tag, int &source, std::string &bytes,
                   bool wait) override;

private:
  struct PendingSend;
  int rank_ = 0, size_ = 1, localSize_ = 1;
  std::unique_ptr<PendingSend> pending_;
};

} // namespace quench

#endif // QUENCH_TOOLS_MPICOMMUNICATOR_H
