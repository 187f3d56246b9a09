//===- MPICommunicator.cpp - Communicator over MPI ------------------------===//
//
// Every wait polls (MPI_Test, MPI_Iprobe) and sleeps between polls instead
// of blocking in MPI: a blocked OpenMPI process spins on its core, which
// on a small machine takes that core from the process still working (the
// layers rank 0 quantizes, its code generation while the others finish).
//
//===----------------------------------------------------------------------===//

#include "MPICommunicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

using namespace quench;

namespace {
/// Polls `done` until it holds: at first at once, then every 0.2 ms.
template <typename F> void pollUntil(F &&done) {
  for (int polls = 0; !done(); ++polls)
    if (polls > 100)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
}

void wait(MPI_Request &request) {
  pollUntil([&] {
    int flag = 0;
    MPI_Test(&request, &flag, MPI_STATUS_IGNORE);
    return flag != 0;
  });
}

MPI_Datatype mpiType(Communicator::Type type) {
  switch (type) {
  case Communicator::Type::F32:
    return MPI_FLOAT;
  case Communicator::Type::F64:
    return MPI_DOUBLE;
  case Communicator::Type::U64:
    return MPI_UINT64_T;
  case Communicator::Type::I64:
    return MPI_INT64_T;
  }
  return MPI_DOUBLE;
}

MPI_Op mpiOp(Communicator::Op op) {
  switch (op) {
  case Communicator::Op::Sum:
    return MPI_SUM;
  case Communicator::Op::Min:
    return MPI_MIN;
  case Communicator::Op::Max:
    return MPI_MAX;
  }
  return MPI_SUM;
}

/// MPI counts are ints: large buffers go in pieces.
constexpr size_t kMaxCount = size_t(1) << 28;
} // namespace

struct MPICommunicator::PendingSend {
  std::string bytes;
  MPI_Request request = MPI_REQUEST_NULL;
};

MPICommunicator::MPICommunicator(int *argc, char ***argv) {
  MPI_Init(argc, argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_,
                      MPI_INFO_NULL, &local);
  MPI_Comm_size(local, &localSize_);
  MPI_Comm_free(&local);
}

MPICommunicator::~MPICommunicator() {
  flushSendsImpl();
  MPI_Finalize();
}

void MPICommunicator::allReduceImpl(void *data, size_t n, Type type, Op op) {
  char *p = static_cast<char *>(data);
  size_t elt = sizeOf(type);
  for (size_t done = 0; done < n;) {
    size_t count = std::min(n - done, kMaxCount);
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, p + done * elt, static_cast<int>(count),
                   mpiType(type), mpiOp(op), MPI_COMM_WORLD, &request);
    wait(request);
    done += count;
  }
}

void MPICommunicator::broadcastImpl(std::string &bytes, int root) {
  for (size_t done = 0; done < bytes.size();) {
    size_t count = std::min(bytes.size() - done, kMaxCount);
    MPI_Request request;
    MPI_Ibcast(bytes.data() + done, static_cast<int>(count), MPI_BYTE, root,
               MPI_COMM_WORLD, &request);
    wait(request);
    done += count;
  }
}

void MPICommunicator::sendImpl(int dest, int tag, std::string bytes) {
  flushSendsImpl();
  pending_ = std::make_unique<PendingSend>();
  pending_->bytes = std::move(bytes);
  // One layer's codes stay far below 2 GB (INT_MAX bytes).
  MPI_Isend(pending_->bytes.data(), static_cast<int>(pending_->bytes.size()),
            MPI_BYTE, dest, tag, MPI_COMM_WORLD, &pending_->request);
}

void MPICommunicator::flushSendsImpl() {
  if (!pending_)
    return;
  wait(pending_->request);
  pending_.reset();
}

bool MPICommunicator::receiveImpl(int tag, int &source, std::string &bytes,
                                  bool wait) {
  MPI_Status status;
  int flag = 0;
  auto probe = [&] {
    MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &status);
    return flag != 0;
  };
  if (wait)
    pollUntil(probe);
  else if (!probe())
    return false;
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  source = status.MPI_SOURCE;
  bytes.assign(static_cast<size_t>(count), '\0');
  MPI_Recv(bytes.data(), count, MPI_BYTE, source, tag, MPI_COMM_WORLD,
           MPI_STATUS_IGNORE);
  return true;
}
