// RUN: quench-opt --convert-quench-to-linalg --split-input-file %s | FileCheck %s

// convert-quench-to-linalg: the run-time checks whose messages carry the
// offending values (emitRuntimeCheck, docs/reliability.md): an scf.if on
// the failed condition at the top level, before the loops that rely on it,
// calling quench_rt_check_failed_values(message, v0, v1) with "{0}"/"{1}"
// in the message standing for the values.

// Gather with run-time i32 indices: one min/max reduction over the
// indices, the offending one (the minimum when it is below -n, else the
// maximum) and n in the message.
// CHECK:       llvm.mlir.global internal constant @[[MSG:quench_check_values_message_[0-9a-f_]+]]("node 'emb' (Gather): index {0} is outside [-{1}, {1}) of axis 0 at run time (e.g. a token id not below the vocabulary size, or more positions than the model's position table)\00")
// CHECK:       llvm.func @quench_rt_check_failed_values(!llvm.ptr, i64, i64)
// CHECK-LABEL: func.func @gather_i32(
// CHECK-SAME:      %[[T:.+]]: tensor<100x8xf32>, %[[I:.+]]: tensor<?xi32>
// CHECK:         %[[R:.+]]:2 = linalg.generic {{.*}}iterator_types = ["reduction"]} ins(%[[I]] : tensor<?xi32>)
// CHECK:           arith.minsi
// CHECK:           arith.maxsi
// CHECK:         %[[LO32:.+]] = tensor.extract %[[R]]#0[]
// CHECK:         %[[HI32:.+]] = tensor.extract %[[R]]#1[]
// CHECK:         %[[LO:.+]] = arith.extsi %[[LO32]] : i32 to i64
// CHECK:         %[[HI:.+]] = arith.extsi %[[HI32]] : i32 to i64
// CHECK:         %[[N:.+]] = arith.index_cast %{{.+}} : index to i64
// CHECK:         %[[NEGN:.+]] = arith.subi %{{.+}}, %[[N]] : i64
// CHECK:         %[[LOOK:.+]] = arith.cmpi sge, %[[LO]], %[[NEGN]] : i64
// CHECK:         %[[HIOK:.+]] = arith.cmpi slt, %[[HI]], %[[N]] : i64
// CHECK:         %[[OK:.+]] = arith.andi %[[LOOK]], %[[HIOK]] : i1
// CHECK:         %[[BAD:.+]] = arith.select %[[LOOK]], %[[HI]], %[[LO]] : i64
// CHECK:         %[[FAILED:.+]] = arith.xori %[[OK]], %{{.+}} : i1
// CHECK:         scf.if %[[FAILED]] {
// CHECK:           %[[A:.+]] = llvm.mlir.addressof @[[MSG]] : !llvm.ptr
// CHECK:           %[[P:.+]] = llvm.getelementptr %[[A]][0, 0]
// CHECK:           llvm.call @quench_rt_check_failed_values(%[[P]], %[[BAD]], %[[N]]) : (!llvm.ptr, i64, i64) -> ()
// CHECK:         }
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]} ins(%[[I]] : tensor<?xi32>)
// CHECK:           tensor.extract %[[T]]
func.func @gather_i32(%t: tensor<100x8xf32>, %i: tensor<?xi32>) -> tensor<?x8xf32> {
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<100x8xf32>, tensor<?xi32>) -> tensor<?x8xf32> loc("emb"("Gather"))
  return %0 : tensor<?x8xf32>
}

// -----

// Constant indices into a static axis: checked at compile time (in range
// here), no run-time check.
// CHECK-NOT:   quench_rt_check_failed_values
// CHECK-LABEL: func.func @gather_const(
// CHECK-NOT:     scf.if
// CHECK:         linalg.generic
func.func @gather_const(%t: tensor<100x8xf32>) -> tensor<2x8xf32> {
  %i = quench.constant dense<[3, -100]> : tensor<2xi64>
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<100x8xf32>, tensor<2xi64>) -> tensor<2x8xf32>
  return %0 : tensor<2x8xf32>
}

// -----

// Constant indices into an axis of run-time extent: checked at run time,
// against the extent (no node name: the generic description).
// CHECK:       llvm.mlir.global internal constant @{{.+}}("a gather (Gather): index {0} is outside [-{1}, {1}) of axis 0 at run time
// CHECK-LABEL: func.func @gather_const_dynamic_axis(
// CHECK:         %[[DIM:.+]] = tensor.dim
// CHECK:         linalg.generic {{.*}}iterator_types = ["reduction"]}
// CHECK:         %[[N:.+]] = arith.index_cast %[[DIM]] : index to i64
// CHECK:         scf.if
// CHECK:           llvm.call @quench_rt_check_failed_values(%{{.+}}, %{{.+}}, %[[N]])
func.func @gather_const_dynamic_axis(%t: tensor<?xf32>) -> tensor<2xf32> {
  %i = quench.constant dense<[3, 5]> : tensor<2xi64>
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<?xf32>, tensor<2xi64>) -> tensor<2xf32>
  return %0 : tensor<2xf32>
}

// -----

// Expand to a run-time shape: a requested extent where the input has none
// (a static 1) must not be negative; one where it has a dynamic extent
// must be 1 or equal to it, and the result takes the input's.
// CHECK-DAG:   @[[NEG:quench_check_values_message_[0-9a-f_]+]]("node 'grow' (Expand): the requested extent {0} of dimension 0 is negative at run time\00")
// CHECK-DAG:   @[[BC:quench_check_values_message_[0-9a-f_]+]]("node 'grow' (Expand): the requested extent {0} of dimension 1 does not broadcast with the input's {1} at run time
// CHECK-LABEL: func.func @expand(
// CHECK-SAME:      %[[X:.+]]: tensor<1x?xf32>, %[[S:.+]]: tensor<2xi64>
// CHECK:         %[[E0:.+]] = tensor.extract %[[S]][%{{.+}}] : tensor<2xi64>
// CHECK:         %[[W0:.+]] = arith.index_cast %[[E0]] : i64 to index
// CHECK:         arith.cmpi sge, %[[W0]], %{{.+}} : index
// CHECK:         scf.if
// CHECK:           llvm.mlir.addressof @[[NEG]]
// CHECK:         %[[D1:.+]] = tensor.dim %[[X]], %{{.+}} : tensor<1x?xf32>
// CHECK:         %[[E1:.+]] = tensor.extract %[[S]][%{{.+}}] : tensor<2xi64>
// CHECK:         %[[W1:.+]] = arith.index_cast %[[E1]] : i64 to index
// CHECK:         %[[ONE:.+]] = arith.cmpi eq, %[[W1]], %{{.+}} : index
// CHECK:         %[[SAME:.+]] = arith.cmpi eq, %[[W1]], %[[D1]] : index
// CHECK:         arith.ori %[[ONE]], %[[SAME]] : i1
// CHECK:         scf.if
// CHECK:           llvm.mlir.addressof @[[BC]]
// CHECK:         tensor.empty(%[[W0]], %[[D1]]) : tensor<?x?xf32>
func.func @expand(%x: tensor<1x?xf32>, %s: tensor<2xi64>) -> tensor<?x?xf32> {
  %0 = quench.expand %x(%s) : tensor<1x?xf32>, tensor<2xi64> -> tensor<?x?xf32> loc("grow"("Expand"))
  return %0 : tensor<?x?xf32>
}

// -----

// Concat: a dynamic non-axis extent against the result's static one.
// CHECK:       @[[MSG:quench_check_values_message_[0-9a-f_]+]]("node 'cat' (Concat): input 0 has the extent {0} in dimension 1, not {1}, at run time (inconsistent input shapes)\00")
// CHECK-LABEL: func.func @concat(
// CHECK-SAME:      %[[A:.+]]: tensor<?x?xf32>
// CHECK:         %[[D:.+]] = tensor.dim %[[A]], %{{.+}} : tensor<?x?xf32>
// CHECK:         arith.cmpi eq, %[[D]], %{{.+}} : index
// CHECK:         scf.if
// CHECK:           llvm.mlir.addressof @[[MSG]]
// CHECK:         tensor.concat dim(0)
func.func @concat(%a: tensor<?x?xf32>, %b: tensor<2x3xf32>) -> tensor<?x3xf32> {
  %0 = quench.concat %a, %b {axis = 0 : i64} : (tensor<?x?xf32>, tensor<2x3xf32>) -> tensor<?x3xf32> loc("cat"("Concat"))
  return %0 : tensor<?x3xf32>
}

// -----

// MatMul: a dynamic contracted extent against the other operand's.
// CHECK:       @[[MSG:quench_check_values_message_[0-9a-f_]+]]("node 'mm' (MatMul): the left operand's contracted extent {0} differs from the right's {1} at run time\00")
// CHECK-LABEL: func.func @matmul(
// CHECK-SAME:      %[[A:.+]]: tensor<?x?xf32>
// CHECK:         %[[K:.+]] = tensor.dim %[[A]], %{{.+}} : tensor<?x?xf32>
// CHECK:         arith.cmpi eq, %[[K]], %{{.+}} : index
// CHECK:         scf.if
// CHECK:           llvm.mlir.addressof @[[MSG]]
// CHECK:         linalg.matmul
func.func @matmul(%a: tensor<?x?xf32>, %b: tensor<4x2xf32>) -> tensor<?x2xf32> {
  %0 = quench.matmul %a, %b : (tensor<?x?xf32>, tensor<4x2xf32>) -> tensor<?x2xf32> loc("mm"("MatMul"))
  return %0 : tensor<?x2xf32>
}

// -----

// Reshape to a run-time shape: each run-time extent non-negative, and the
// extents' product (overflow tracked with mului_extended) equal to the
// input's element count.
// CHECK-DAG:   @[[NEG:quench_check_values_message_[0-9a-f_]+]]("node 'rs' (Reshape): the requested extent {0} of dimension 0 is negative at run time\00")
// CHECK-DAG:   @[[CNT:quench_check_values_message_[0-9a-f_]+]]("node 'rs' (Reshape): cannot reshape {0} elements into the requested shape at run time (its extents multiply to {1}, modulo 2^64)\00")
// CHECK-LABEL: func.func @reshape(
// CHECK:         scf.if
// CHECK:           llvm.mlir.addressof @[[NEG]]
// CHECK:         arith.mului_extended
// CHECK:         %[[LOW:.+]], %[[HIGH:.+]] = arith.mului_extended
// CHECK:         arith.cmpi ne, %[[HIGH]]
// CHECK:         arith.cmpi eq, %[[LOW]], %[[COUNT:.+]] : i64
// CHECK:         scf.if
// CHECK:           llvm.mlir.addressof @[[CNT]]
// CHECK:           llvm.call @quench_rt_check_failed_values(%{{.+}}, %[[COUNT]], %[[LOW]])
// CHECK:         tensor.reshape
func.func @reshape(%x: tensor<?xf32>, %s: tensor<2xi64>) -> tensor<?x4xf32> {
  %0 = quench.reshape %x(%s) : tensor<?xf32>, tensor<2xi64> -> tensor<?x4xf32> loc("rs"("Reshape"))
  return %0 : tensor<?x4xf32>
}

// -----
// Quantized contractions whose input's feature extent is dynamic: it must
// equal in_features (the codes' K) at run time.
// CHECK:       llvm.mlir.global internal constant @[[MSG:quench_check_values_message_[0-9a-f_]+]]("node 'fc' (MatMulNBits): the left operand's contracted extent {0} differs from the right's {1} at run time\00")
// CHECK-LABEL: func.func @nbits_dynamic_k(
// CHECK:         %[[C1:.+]] = arith.constant 1 : index
// CHECK:         %[[K:.+]] = tensor.dim %{{.+}}, %[[C1]] : tensor<3x?xf32>
// CHECK:         %[[C32:.+]] = arith.constant 32 : index
// CHECK:         %[[OK:.+]] = arith.cmpi eq, %[[K]], %[[C32]] : index
// CHECK:         scf.if
// CHECK:           llvm.call @quench_rt_check_failed_values(
// CHECK:         }
// CHECK:         linalg.generic
func.func @nbits_dynamic_k(%x: tensor<3x?xf32>) -> tensor<3x2xf32> {
  %w = quench.constant dense<17> : tensor<2x2x8xui8>
  %s = quench.constant dense<1.0> : tensor<4xf32>
  %y = quench.matmul_nbits %x, %w, %s {in_features = 32 : i64, out_features = 2 : i64, bits = 4 : i64, block_size = 16 : i64}
      : (tensor<3x?xf32>, tensor<2x2x8xui8>, tensor<4xf32>) -> tensor<3x2xf32> loc("fc"("MatMulNBits"))
  return %y : tensor<3x2xf32>
}
