// RUN: quench-opt --convert-quench-to-linalg --split-input-file %s | FileCheck %s

// convert-quench-to-linalg: shape manipulation, gather, trilu, shape_of, range.

// CHECK-LABEL: func.func @reshape_static(
// CHECK:         tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<2x3x4xf32> into tensor<6x4xf32>
func.func @reshape_static(%x: tensor<2x3x4xf32>) -> tensor<6x4xf32> {
  %0 = quench.reshape %x : tensor<2x3x4xf32> -> tensor<6x4xf32>
  return %0 : tensor<6x4xf32>
}

// -----

// CHECK-LABEL: func.func @reshape_dynamic(
// CHECK-SAME:      %[[X:.+]]: tensor<?x12xf32>, %[[S:.+]]: tensor<3xi64>
// CHECK:         tensor.reshape %[[X]](%[[S]]) : (tensor<?x12xf32>, tensor<3xi64>) -> tensor<?x3x4xf32>
func.func @reshape_dynamic(%x: tensor<?x12xf32>, %s: tensor<3xi64>) -> tensor<?x3x4xf32> {
  %0 = quench.reshape %x(%s) : tensor<?x12xf32>, tensor<3xi64> -> tensor<?x3x4xf32>
  return %0 : tensor<?x3x4xf32>
}

// -----

// CHECK-LABEL: func.func @transpose(
// CHECK-SAME:      %[[X:.+]]: tensor<?x4x8xf32>
// CHECK:         %[[D:.+]] = tensor.dim %[[X]], %c0
// CHECK:         %[[E:.+]] = tensor.empty(%[[D]]) : tensor<8x?x4xf32>
// CHECK:         linalg.transpose ins(%[[X]] : tensor<?x4x8xf32>) outs(%[[E]] : tensor<8x?x4xf32>) permutation = [2, 0, 1]
func.func @transpose(%x: tensor<?x4x8xf32>) -> tensor<8x?x4xf32> {
  %0 = quench.transpose %x {permutation = array<i64: 2, 0, 1>} : tensor<?x4x8xf32> -> tensor<8x?x4xf32>
  return %0 : tensor<8x?x4xf32>
}

// -----

// CHECK-LABEL: func.func @concat(
// CHECK:         tensor.concat dim(1) %{{.*}}, %{{.*}} : (tensor<?x4xf32>, tensor<?x2xf32>) -> tensor<?x6xf32>
func.func @concat(%a: tensor<?x4xf32>, %b: tensor<?x2xf32>) -> tensor<?x6xf32> {
  %0 = quench.concat %a, %b {axis = 1 : i64} : (tensor<?x4xf32>, tensor<?x2xf32>) -> tensor<?x6xf32>
  return %0 : tensor<?x6xf32>
}

// -----

// A dynamic extent is computed from the clamped bounds.
// CHECK-LABEL: func.func @slice_strided(
// CHECK-SAME:      %[[X:.+]]: tensor<10x?xf32>
// CHECK:         %[[START:.+]] = arith.minsi %c0, %{{.*}} : index
// CHECK:         %[[N:.+]] = arith.maxsi %{{.*}}, %c0{{.*}} : index
// CHECK:         tensor.extract_slice %[[X]][1, %[[START]]] [4, %[[N]]] [2, 1] : tensor<10x?xf32> to tensor<4x?xf32>
func.func @slice_strided(%x: tensor<10x?xf32>) -> tensor<4x?xf32> {
  %0 = quench.slice %x {starts = array<i64: 1, 0>, ends = array<i64: 9, 9223372036854775807>, steps = array<i64: 2, 1>} : tensor<10x?xf32> -> tensor<4x?xf32>
  return %0 : tensor<4x?xf32>
}

// -----

// CHECK-LABEL: func.func @slice_negative(
// CHECK-SAME:      %[[X:.+]]: tensor<8xf32>
// CHECK:         linalg.generic {{.*}} outs(%{{.*}} : tensor<4xf32>)
// CHECK:           %[[I:.+]] = linalg.index 0 : index
// CHECK:           %[[OFF:.+]] = arith.muli %[[I]], %c-2 : index
// CHECK:           %[[IDX:.+]] = arith.addi %c7, %[[OFF]] : index
// CHECK:           tensor.extract %[[X]][%[[IDX]]] : tensor<8xf32>
func.func @slice_negative(%x: tensor<8xf32>) -> tensor<4xf32> {
  %0 = quench.slice %x {starts = array<i64: 7>, ends = array<i64: -1>, steps = array<i64: -2>} : tensor<8xf32> -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @split(
// CHECK:         %[[A:.+]] = tensor.extract_slice %{{.*}}[0, 0] [%{{.*}}, 2] [1, 1] : tensor<?x6xf32> to tensor<?x2xf32>
// CHECK:         %[[B:.+]] = tensor.extract_slice %{{.*}}[0, 2] [%{{.*}}, 4] [1, 1] : tensor<?x6xf32> to tensor<?x4xf32>
// CHECK:         return %[[A]], %[[B]]
func.func @split(%x: tensor<?x6xf32>) -> (tensor<?x2xf32>, tensor<?x4xf32>) {
  %0:2 = quench.split %x {axis = 1 : i64, sizes = array<i64: 2, 4>} : tensor<?x6xf32> -> tensor<?x2xf32>, tensor<?x4xf32>
  return %0#0, %0#1 : tensor<?x2xf32>, tensor<?x4xf32>
}

// -----

// An empty piece is a tensor.empty: extract_slice's verifier rejects offset
// 2 of a 2-extent dimension (and offset 0 of a 0-extent one) even for an
// empty slice (ONNX test_split_zero_size_splits).
// CHECK-LABEL: func.func @split_empty_pieces(
// CHECK-SAME:      %[[X:.+]]: tensor<?x2xf32>, %[[Z:.+]]: tensor<0xf32>
// CHECK:         %[[A:.+]] = tensor.extract_slice %[[X]][0, 0] [%{{.*}}, 2] [1, 1] : tensor<?x2xf32> to tensor<?x2xf32>
// CHECK:         %[[D:.+]] = tensor.dim %[[X]], %c0
// CHECK:         %[[B:.+]] = tensor.empty(%[[D]]) : tensor<?x0xf32>
// CHECK:         %[[C:.+]] = tensor.empty() : tensor<0xf32>
// CHECK:         %[[E:.+]] = tensor.empty() : tensor<0xf32>
// CHECK-NOT:     tensor.extract_slice
// CHECK:         return %[[A]], %[[B]], %[[C]], %[[E]]
func.func @split_empty_pieces(%x: tensor<?x2xf32>, %z: tensor<0xf32>) -> (tensor<?x2xf32>, tensor<?x0xf32>, tensor<0xf32>, tensor<0xf32>) {
  %0:2 = quench.split %x {axis = 1 : i64, sizes = array<i64: 2, 0>} : tensor<?x2xf32> -> tensor<?x2xf32>, tensor<?x0xf32>
  %1:2 = quench.split %z {axis = 0 : i64, sizes = array<i64: 0, 0>} : tensor<0xf32> -> tensor<0xf32>, tensor<0xf32>
  return %0#0, %0#1, %1#0, %1#1 : tensor<?x2xf32>, tensor<?x0xf32>, tensor<0xf32>, tensor<0xf32>
}

// -----

// Likewise an empty slice, here of a 0-extent dimension.
// CHECK-LABEL: func.func @slice_empty(
// CHECK-NOT:     tensor.extract_slice
// CHECK:         %[[E:.+]] = tensor.empty() : tensor<0x2xf32>
// CHECK:         return %[[E]]
func.func @slice_empty(%x: tensor<0x3xf32>) -> tensor<0x2xf32> {
  %0 = quench.slice %x {starts = array<i64: 0, 1>, ends = array<i64: 0, 3>, steps = array<i64: 1, 1>} : tensor<0x3xf32> -> tensor<0x2xf32>
  return %0 : tensor<0x2xf32>
}

// -----

// CHECK-DAG: #[[BC:.+]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-LABEL: func.func @expand(
// CHECK-SAME:      %[[X:.+]]: tensor<1x4xf32>, %[[S:.+]]: tensor<2xi64>
// CHECK:         %[[E0:.+]] = tensor.extract %[[S]][%c0] : tensor<2xi64>
// CHECK:         %[[D0:.+]] = arith.index_cast %[[E0]] : i64 to index
// CHECK:         %[[INIT:.+]] = tensor.empty(%[[D0]]) : tensor<?x4xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[BC]], #{{.*}}], {{.*}} ins(%[[X]] : tensor<1x4xf32>) outs(%[[INIT]] : tensor<?x4xf32>)
func.func @expand(%x: tensor<1x4xf32>, %s: tensor<2xi64>) -> tensor<?x4xf32> {
  %0 = quench.expand %x(%s) : tensor<1x4xf32>, tensor<2xi64> -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

// CHECK-LABEL: func.func @squeeze_unsqueeze(
// CHECK:         %[[C:.+]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<?x1x4xf32> into tensor<?x4xf32>
// CHECK:         %[[D:.+]] = tensor.dim %[[C]], %c0
// CHECK:         tensor.expand_shape %[[C]] {{\[\[}}0], [1, 2]] output_shape [%[[D]], 4, 1] : tensor<?x4xf32> into tensor<?x4x1xf32>
func.func @squeeze_unsqueeze(%x: tensor<?x1x4xf32>) -> tensor<?x4x1xf32> {
  %0 = quench.squeeze %x {axes = array<i64: 1>} : tensor<?x1x4xf32> -> tensor<?x4xf32>
  %1 = quench.unsqueeze %0 {axes = array<i64: 2>} : tensor<?x4xf32> -> tensor<?x4x1xf32>
  return %1 : tensor<?x4x1xf32>
}

// -----

// CHECK-LABEL: func.func @trilu(
// CHECK:           %[[ROW:.+]] = linalg.index 0 : index
// CHECK:           %[[COL:.+]] = linalg.index 1 : index
// CHECK:           %[[DIFF:.+]] = arith.subi %[[COL]], %[[ROW]] : index
// CHECK:           %[[KEEP:.+]] = arith.cmpi sge, %[[DIFF]], %c1{{.*}} : index
// CHECK:           arith.select %[[KEEP]], %{{.*}}, %{{.*}} : f32
func.func @trilu(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
  %0 = quench.trilu %x {upper = true, k = 1 : i64} : tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----

// CHECK-LABEL: func.func @shape_of(
// CHECK-SAME:      %[[X:.+]]: tensor<?x4xf32>
// CHECK:         %[[D:.+]] = tensor.dim %[[X]], %c0
// CHECK:         %[[D64:.+]] = arith.index_cast %[[D]] : index to i64
// CHECK:         %[[C64:.+]] = arith.index_cast %c4 : index to i64
// CHECK:         tensor.from_elements %[[D64]], %[[C64]] : tensor<2xi64>
func.func @shape_of(%x: tensor<?x4xf32>) -> tensor<2xi64> {
  %0 = quench.shape_of %x : tensor<?x4xf32> -> tensor<2xi64>
  return %0 : tensor<2xi64>
}

// -----

// CHECK-LABEL: func.func @range(
// CHECK:         %[[START:.+]] = tensor.extract %{{.*}}[] : tensor<i64>
// CHECK:         %[[LIMIT:.+]] = tensor.extract %{{.*}}[] : tensor<i64>
// CHECK:         %[[DELTA:.+]] = tensor.extract %{{.*}}[] : tensor<i64>
// CHECK:         %[[SPAN:.+]] = arith.subi %[[LIMIT]], %[[START]] : i64
// CHECK:         arith.ceildivsi %[[SPAN]], %[[DELTA]] : i64
// CHECK:         linalg.generic
// CHECK:           linalg.index 0
// CHECK:           arith.muli %{{.*}}, %[[DELTA]] : i64
// CHECK:           arith.addi %[[START]], %{{.*}} : i64
func.func @range(%a: tensor<i64>, %b: tensor<i64>, %c: tensor<i64>) -> tensor<?xi64> {
  %0 = quench.range %a, %b, %c : (tensor<i64>, tensor<i64>, tensor<i64>) -> tensor<?xi64>
  return %0 : tensor<?xi64>
}

// -----

// Negative indices count from the end: index + dim(data, axis); the result
// is clamped to [0, dim) so that no index reads outside the table.
// CHECK-DAG: #[[IDXMAP:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func.func @gather(
// CHECK-SAME:      %[[T:.+]]: tensor<100x?xf32>, %[[I:.+]]: tensor<?x?xi64>
// CHECK:         linalg.generic {indexing_maps = [#[[IDXMAP]], #{{.*}}], {{.*}} ins(%[[I]] : tensor<?x?xi64>) outs(%{{.*}} : tensor<?x?x?xf32>)
// CHECK:           %[[IDX:.+]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[NEG:.+]] = arith.cmpi slt, %[[IDX]], %c0{{.*}} : index
// CHECK:           %[[WRAP:.+]] = arith.addi %[[IDX]], %c100 : index
// CHECK:           %[[SEL:.+]] = arith.select %[[NEG]], %[[WRAP]], %[[IDX]] : index
// CHECK:           %[[LAST:.+]] = arith.subi %c100{{.*}}, %c1{{.*}} : index
// CHECK:           %[[LO:.+]] = arith.minsi %[[SEL]], %[[LAST]] : index
// CHECK:           %[[IN:.+]] = arith.maxsi %[[LO]], %c0{{.*}} : index
// CHECK:           %[[J:.+]] = linalg.index 2 : index
// CHECK:           tensor.extract %[[T]][%[[IN]], %[[J]]] : tensor<100x?xf32>
func.func @gather(%t: tensor<100x?xf32>, %i: tensor<?x?xi64>) -> tensor<?x?x?xf32> {
  %0 = quench.gather %t[%i] {axis = 0 : i64} : (tensor<100x?xf32>, tensor<?x?xi64>) -> tensor<?x?x?xf32>
  return %0 : tensor<?x?x?xf32>
}

// -----

// A shape operand of dynamic length is cast to the result rank first.
// CHECK-LABEL: func.func @reshape_dynamic_length_shape(
// CHECK-SAME:      %[[X:.+]]: tensor<?x?xf32>, %[[S:.+]]: tensor<?xi64>
// CHECK:         %[[S3:.+]] = tensor.cast %[[S]] : tensor<?xi64> to tensor<3xi64>
// CHECK:         tensor.reshape %[[X]](%[[S3]]) : (tensor<?x?xf32>, tensor<3xi64>) -> tensor<?x?x?xf32>
func.func @reshape_dynamic_length_shape(%x: tensor<?x?xf32>, %s: tensor<?xi64>) -> tensor<?x?x?xf32> {
  %0 = quench.reshape %x(%s) : tensor<?x?xf32>, tensor<?xi64> -> tensor<?x?x?xf32>
  return %0 : tensor<?x?x?xf32>
}
