//===- Communicator.cpp - processes that compile one model together -------===//

#include "quench/Support/Communicator.h"

#include <cstdio>
#include <cstdlib>

using namespace quench;

size_t quench::sizeOf(Communicator::Type type) {
  switch (type) {
  case Communicator::Type::F32:
    return 4;
  case Communicator::Type::F64:
  case Communicator::Type::U64:
  case Communicator::Type::I64:
    return 8;
  }
  return 8;
}

void Communicator::allReduce(void *data, size_t n, Type type, Op op) {
  if (size() > 1) {
    bytesSent_ += n * sizeOf(type);
    bytesReceived_ += n * sizeOf(type);
  }
  allReduceImpl(data, n, type, op);
}

void Communicator::broadcast(std::string &bytes, int root) {
  if (size() == 1)
    return;
  // The length first: the other processes size their buffers by it.
  uint64_t length = rank() == root ? bytes.size() : 0;
  allReduce(&length, 1, Type::U64, Op::Sum);
  if (rank() != root)
    bytes.assign(length, '\0');
  if (rank() == root)
    bytesSent_ += length;
  else
    bytesReceived_ += length;
  broadcastImpl(bytes, root);
}

void Communicator::send(int dest, int tag, std::string bytes) {
  bytesSent_ += bytes.size();
  sendImpl(dest, tag, std::move(bytes));
}

void Communicator::flushSends() { flushSendsImpl(); }

bool Communicator::receive(int tag, int &source, std::string &bytes,
                           bool wait) {
  if (!receiveImpl(tag, source, bytes, wait))
    return false;
  bytesReceived_ += bytes.size();
  return true;
}

std::string Communicator::agree(const std::string &localError) {
  if (size() == 1)
    return localError;
  int64_t first = localError.empty() ? size() : rank();
  allReduceMin(&first, 1);
  if (first == size())
    return "";
  std::string message = localError;
  broadcast(message, static_cast<int>(first));
  return message;
}

void SingleProcessCommunicator::sendImpl(int, int, std::string) {
  // Only a program error gets here: a single process has no peer.
  std::fprintf(stderr, "quench: send without another process\n");
  std::abort();
}
