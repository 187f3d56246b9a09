// RUN: quench-opt --convert-quench-to-linalg --split-input-file %s | FileCheck %s

// convert-quench-to-linalg: quantize_linear, dequantize_linear,
// dynamic_quantize_linear, matmul_integer, qlinear_matmul.

// Per tensor: x / scale (a division), round half to even, + zero point,
// clamped in float (maxnumf: NaN becomes the lower bound), then converted.
// CHECK-DAG: #[[ID:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[SCALAR:.+]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @quantize_per_tensor(
// CHECK-SAME:      %[[X:.+]]: tensor<?x4xf32>, %[[S:.+]]: tensor<f32>, %[[Z:.+]]: tensor<i8>) -> tensor<?x4xi8>
// CHECK:         %[[D:.+]] = tensor.dim %[[X]], %c0
// CHECK:         %[[E:.+]] = tensor.empty(%[[D]]) : tensor<?x4xi8>
// CHECK:         %[[R:.+]] = linalg.generic {indexing_maps = [#[[ID]], #[[SCALAR]], #[[SCALAR]], #[[ID]]], iterator_types = ["parallel", "parallel"]}
// CHECK-SAME:        ins(%[[X]], %[[S]], %[[Z]] : tensor<?x4xf32>, tensor<f32>, tensor<i8>) outs(%[[E]] : tensor<?x4xi8>)
// CHECK:         ^bb0(%[[XV:.+]]: f32, %[[SV:.+]]: f32, %[[ZV:.+]]: i8, %{{.+}}: i8):
// CHECK:           %[[Q:.+]] = arith.divf %[[XV]], %[[SV]] : f32
// CHECK:           %[[RND:.+]] = math.roundeven %[[Q]] : f32
// CHECK:           %[[ZF:.+]] = arith.uitofp %[[ZV]] : i8 to f32
// CHECK:           %[[SUM:.+]] = arith.addf %[[RND]], %[[ZF]] : f32
// CHECK:           %[[LO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:           %[[C1:.+]] = arith.maxnumf %[[SUM]], %[[LO]] : f32
// CHECK:           %[[HI:.+]] = arith.constant 2.550000e+02 : f32
// CHECK:           %[[C2:.+]] = arith.minnumf %[[C1]], %[[HI]] : f32
// CHECK:           %[[I:.+]] = arith.fptosi %[[C2]] : f32 to i32
// CHECK:           %[[T:.+]] = arith.trunci %[[I]] : i32 to i8
// CHECK:           linalg.yield %[[T]] : i8
// CHECK:         return %[[R]] : tensor<?x4xi8>
func.func @quantize_per_tensor(%x: tensor<?x4xf32>, %s: tensor<f32>, %z: tensor<ui8>) -> tensor<?x4xui8> {
  %0 = quench.quantize_linear %x, %s, %z {axis = 1 : i64} : (tensor<?x4xf32>, tensor<f32>, tensor<ui8>) -> tensor<?x4xui8>
  return %0 : tensor<?x4xui8>
}

// -----

// Per axis, no zero point, signed: bounds -128 and 127, no addition.
// CHECK-DAG: #[[ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[AX:.+]] = affine_map<(d0, d1, d2) -> (d1)>
// CHECK-LABEL: func.func @quantize_per_axis_no_zp(
// CHECK-SAME:      %[[X:.+]]: tensor<2x3x4xf32>, %[[S:.+]]: tensor<3xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[ID3]], #[[AX]], #[[ID3]]], {{.*}}} ins(%[[X]], %[[S]] : tensor<2x3x4xf32>, tensor<3xf32>) outs(%{{.*}} : tensor<2x3x4xi8>)
// CHECK:           arith.divf
// CHECK-NEXT:      math.roundeven
// CHECK-NOT:       arith.addf
// CHECK:           arith.constant -1.280000e+02 : f32
// CHECK:           arith.maxnumf
// CHECK:           arith.constant 1.270000e+02 : f32
// CHECK:           arith.minnumf
// CHECK:           arith.fptosi {{.*}} : f32 to i32
// CHECK:           arith.trunci {{.*}} : i32 to i8
func.func @quantize_per_axis_no_zp(%x: tensor<2x3x4xf32>, %s: tensor<3xf32>) -> tensor<2x3x4xi8> {
  %0 = quench.quantize_linear %x, %s {axis = 1 : i64} : (tensor<2x3x4xf32>, tensor<3xf32>) -> tensor<2x3x4xi8>
  return %0 : tensor<2x3x4xi8>
}

// -----

// A per-axis scale/zero point of dynamic length is expanded to the axis'
// extent first, reading element 0 when it has a single element at run time.
// CHECK-DAG: #[[V:.+]] = affine_map<(d0) -> (d0)>
// CHECK-DAG: #[[AX:.+]] = affine_map<(d0, d1) -> (d1)>
// CHECK-LABEL: func.func @quantize_per_axis_dynamic(
// CHECK-SAME:      %[[X:.+]]: tensor<4x?xf32>, %[[S:.+]]: tensor<?xf32>, %[[Z:.+]]: tensor<?xi8>
// CHECK:         %[[N:.+]] = tensor.dim %[[X]], %c1
// CHECK:         %[[LEN:.+]] = tensor.dim %[[S]], %c0
// CHECK:         %[[ONE:.+]] = arith.cmpi eq, %[[LEN]], %{{.+}} : index
// CHECK:         %[[SE:.+]] = linalg.generic {indexing_maps = [#[[V]]], iterator_types = ["parallel"]} outs(%{{.*}} : tensor<?xf32>)
// CHECK:           %[[I:.+]] = linalg.index 0 : index
// CHECK:           %[[J:.+]] = arith.select %[[ONE]], %{{.+}}, %[[I]] : index
// CHECK:           tensor.extract %[[S]][%[[J]]] : tensor<?xf32>
// CHECK:         %[[ZE:.+]] = linalg.generic {indexing_maps = [#[[V]]], iterator_types = ["parallel"]} outs(%{{.*}} : tensor<?xi8>)
// CHECK:         linalg.generic {indexing_maps = [#{{.+}}, #[[AX]], #[[AX]], #{{.+}}], {{.*}}} ins(%[[X]], %[[SE]], %[[ZE]] : tensor<4x?xf32>, tensor<?xf32>, tensor<?xi8>)
// CHECK:           arith.sitofp {{.*}} : i8 to f32
func.func @quantize_per_axis_dynamic(%x: tensor<4x?xf32>, %s: tensor<?xf32>, %z: tensor<?xi8>) -> tensor<4x?xi8> {
  %0 = quench.quantize_linear %x, %s, %z {axis = 1 : i64} : (tensor<4x?xf32>, tensor<?xf32>, tensor<?xi8>) -> tensor<4x?xi8>
  return %0 : tensor<4x?xi8>
}

// -----

// f16 input is computed in f32; 32-bit results add the zero point and clamp
// in f64 (exact bounds).
// CHECK-LABEL: func.func @quantize_f16_to_i32(
// CHECK:           arith.extf {{.*}} : f16 to f32
// CHECK:           arith.extf {{.*}} : f16 to f32
// CHECK:           arith.divf {{.*}} : f32
// CHECK:           math.roundeven {{.*}} : f32
// CHECK:           arith.extf {{.*}} : f32 to f64
// CHECK:           arith.sitofp {{.*}} : i32 to f64
// CHECK:           arith.constant 0xC1E0000000000000 : f64
// CHECK:           arith.constant 0x41DFFFFFFFC00000 : f64
// CHECK:           arith.fptosi {{.*}} : f64 to i64
// CHECK:           arith.trunci {{.*}} : i64 to i32
func.func @quantize_f16_to_i32(%x: tensor<8xf16>, %s: tensor<f16>, %z: tensor<i32>) -> tensor<8xi32> {
  %0 = quench.quantize_linear %x, %s, %z {axis = 0 : i64} : (tensor<8xf16>, tensor<f16>, tensor<i32>) -> tensor<8xi32>
  return %0 : tensor<8xi32>
}

// -----

// float(int32(x) - int32(zp)) * scale, per axis.
// CHECK-DAG: #[[ID:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[AX:.+]] = affine_map<(d0, d1) -> (d0)>
// CHECK-LABEL: func.func @dequantize_per_axis(
// CHECK-SAME:      %[[X:.+]]: tensor<3x?xi8>, %[[S:.+]]: tensor<3xf32>, %[[Z:.+]]: tensor<3xi8>) -> tensor<3x?xf32>
// CHECK:         linalg.generic {indexing_maps = [#[[ID]], #[[AX]], #[[AX]], #[[ID]]], {{.*}}} ins(%[[X]], %[[S]], %[[Z]] : tensor<3x?xi8>, tensor<3xf32>, tensor<3xi8>)
// CHECK:         ^bb0(%[[XV:.+]]: i8, %[[SV:.+]]: f32, %[[ZV:.+]]: i8, %{{.+}}: f32):
// CHECK-DAG:       %[[XW:.+]] = arith.extui %[[XV]] : i8 to i32
// CHECK-DAG:       %[[ZW:.+]] = arith.extui %[[ZV]] : i8 to i32
// CHECK:           %[[DIFF:.+]] = arith.subi %[[XW]], %[[ZW]] : i32
// CHECK:           %[[F:.+]] = arith.sitofp %[[DIFF]] : i32 to f32
// CHECK:           %[[Y:.+]] = arith.mulf %[[F]], %[[SV]] : f32
// CHECK:           linalg.yield %[[Y]] : f32
func.func @dequantize_per_axis(%x: tensor<3x?xui8>, %s: tensor<3xf32>, %z: tensor<3xui8>) -> tensor<3x?xf32> {
  %0 = quench.dequantize_linear %x, %s, %z {axis = 0 : i64} : (tensor<3x?xui8>, tensor<3xf32>, tensor<3xui8>) -> tensor<3x?xf32>
  return %0 : tensor<3x?xf32>
}

// -----

// Without a zero point (or with a zero constant one) x converts directly;
// an f16 result is computed in f32 and rounded once.
// CHECK-LABEL: func.func @dequantize_no_zp(
// CHECK-SAME:      %[[X:.+]]: tensor<4xi8>, %[[S:.+]]: tensor<f16>
// CHECK:         linalg.generic {{.*}} ins(%[[X]], %[[S]] : tensor<4xi8>, tensor<f16>)
// CHECK-NOT:       arith.subi
// CHECK:           arith.sitofp {{.*}} : i8 to f32
// CHECK:           arith.mulf {{.*}} : f32
// CHECK:           arith.truncf {{.*}} : f32 to f16
// CHECK-LABEL: func.func @dequantize_zero_zp(
// CHECK-SAME:      %[[X:.+]]: tensor<4xi8>, %[[S:.+]]: tensor<f32>
// CHECK:         linalg.generic {{.*}} ins(%[[X]], %[[S]] : tensor<4xi8>, tensor<f32>)
// CHECK-NOT:       arith.subi
// CHECK:           arith.uitofp {{.*}} : i8 to f32
func.func @dequantize_no_zp(%x: tensor<4xi8>, %s: tensor<f16>) -> tensor<4xf16> {
  %0 = quench.dequantize_linear %x, %s {axis = 0 : i64} : (tensor<4xi8>, tensor<f16>) -> tensor<4xf16>
  return %0 : tensor<4xf16>
}
func.func @dequantize_zero_zp(%x: tensor<4xui8>, %s: tensor<f32>) -> tensor<4xf32> {
  %z = quench.constant dense<0> : tensor<ui8>
  %0 = quench.dequantize_linear %x, %s, %z {axis = 0 : i64} : (tensor<4xui8>, tensor<f32>, tensor<ui8>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// min(0, min x) and max(0, max x) in one reduction (NaN skipped), the scale
// (1 / 255 for an all-zero input) and zero point in scalars, then x
// quantized with them.
// CHECK-DAG: #[[ID:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[SCALAR:.+]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @dynamic_quantize(
// CHECK-SAME:      %[[X:.+]]: tensor<?x4xf32>) -> (tensor<?x4xi8>, tensor<f32>, tensor<i8>)
// CHECK:         %[[ZERO:.+]] = arith.constant 0.000000e+00 : f32
// CHECK:         %[[MIN0:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<f32>)
// CHECK:         %[[MAX0:.+]] = linalg.fill ins(%[[ZERO]] : f32) outs(%{{.*}} : tensor<f32>)
// CHECK:         %[[MM:.+]]:2 = linalg.generic {indexing_maps = [#[[ID]], #[[SCALAR]], #[[SCALAR]]], iterator_types = ["reduction", "reduction"]} ins(%[[X]] : tensor<?x4xf32>) outs(%[[MIN0]], %[[MAX0]] : tensor<f32>, tensor<f32>)
// CHECK:           arith.minnumf
// CHECK:           arith.maxnumf
// CHECK:         %[[MIN:.+]] = tensor.extract %[[MM]]#0[] : tensor<f32>
// CHECK:         %[[MAX:.+]] = tensor.extract %[[MM]]#1[] : tensor<f32>
// CHECK:         %[[SAME:.+]] = arith.cmpf oeq, %[[MAX]], %[[MIN]] : f32
// CHECK:         %[[W:.+]] = arith.subf %[[MAX]], %[[MIN]] : f32
// CHECK:         %[[RANGE:.+]] = arith.select %[[SAME]], %{{.+}}, %[[W]] : f32
// CHECK:         %[[SCALE:.+]] = arith.divf %[[RANGE]], %{{.+}} : f32
// CHECK:         %[[MS:.+]] = arith.divf %[[MIN]], %[[SCALE]] : f32
// CHECK:         arith.subf %[[ZERO]], %[[MS]] : f32
// CHECK:         math.roundeven
// CHECK:         %[[ZP:.+]] = arith.trunci %{{.+}} : i32 to i8
// CHECK:         %[[Y:.+]] = linalg.generic {{.*}} ins(%[[X]] : tensor<?x4xf32>) outs(%{{.*}} : tensor<?x4xi8>)
// CHECK:           arith.divf %{{.+}}, %[[SCALE]] : f32
// CHECK:           math.roundeven
// CHECK:           arith.uitofp %[[ZP]] : i8 to f32
// CHECK:         %[[SOUT:.+]] = tensor.from_elements %[[SCALE]] : tensor<f32>
// CHECK:         %[[ZOUT:.+]] = tensor.from_elements %[[ZP]] : tensor<i8>
// CHECK:         return %[[Y]], %[[SOUT]], %[[ZOUT]]
func.func @dynamic_quantize(%x: tensor<?x4xf32>) -> (tensor<?x4xui8>, tensor<f32>, tensor<ui8>) {
  %y, %s, %z = quench.dynamic_quantize_linear %x : tensor<?x4xf32> -> tensor<?x4xui8>, tensor<f32>, tensor<ui8>
  return %y, %s, %z : tensor<?x4xui8>, tensor<f32>, tensor<ui8>
}

// -----

// Batched (lhs batch dim 1 broadcast), per-row lhs and per-column rhs zero
// points: a two-input contraction of the widened operands, the row sums of
// a and the column sums of b, and the epilogue
// acc - bz * rowsum - az * colsum + K * az * bz.
// CHECK-DAG: #[[A:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, 0, d2, d4)>
// CHECK-DAG: #[[B:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d1, d4, d3)>
// CHECK-DAG: #[[ACC:.+]] = affine_map<(d0, d1, d2, d3, d4) -> (d0, d1, d2, d3)>
// CHECK-DAG: #[[ID4:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
// CHECK-DAG: #[[ROWS:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, 0, d2)>
// CHECK-DAG: #[[COLS:.+]] = affine_map<(d0, d1, d2, d3) -> (d1, d3)>
// CHECK-DAG: #[[M:.+]] = affine_map<(d0, d1, d2, d3) -> (d2)>
// CHECK-DAG: #[[N:.+]] = affine_map<(d0, d1, d2, d3) -> (d3)>
// CHECK-LABEL: func.func @matmul_integer_batched(
// CHECK-SAME:      %[[A0:.+]]: tensor<2x1x?x8xi8>, %[[B0:.+]]: tensor<3x8x5xi8>, %[[AZ:.+]]: tensor<?xi8>, %[[BZ:.+]]: tensor<5xi8>) -> tensor<2x3x?x5xi32>
// CHECK:         %[[INIT:.+]] = linalg.fill ins(%{{.+}} : i32) outs(%{{.+}} : tensor<2x3x?x5xi32>)
// CHECK:         %[[P:.+]] = linalg.generic {indexing_maps = [#[[A]], #[[B]], #[[ACC]]], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%[[A0]], %[[B0]] : tensor<2x1x?x8xi8>, tensor<3x8x5xi8>) outs(%[[INIT]] : tensor<2x3x?x5xi32>)
// CHECK:           %[[AW:.+]] = arith.extui %{{.+}} : i8 to i32
// CHECK:           %[[BW:.+]] = arith.extsi %{{.+}} : i8 to i32
// CHECK:           %[[AB:.+]] = arith.muli %[[AW]], %[[BW]] : i32
// CHECK:           arith.addi %{{.+}}, %[[AB]] : i32
// CHECK:         %[[RS:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[A0]] : tensor<2x1x?x8xi8>) outs(%{{.+}} : tensor<2x1x?xi32>)
// CHECK:           arith.extui
// CHECK:         %[[CS:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[B0]] : tensor<3x8x5xi8>) outs(%{{.+}} : tensor<3x5xi32>)
// CHECK:           arith.extsi
// CHECK:         %[[AZE:.+]] = linalg.generic {{.*}} outs(%{{.+}} : tensor<?xi8>)
// CHECK:         %[[K:.+]] = arith.index_cast %{{.+}} : index to i32
// CHECK:         %[[R:.+]] = linalg.generic {indexing_maps = [#[[ID4]], #[[ROWS]], #[[N]], #[[COLS]], #[[M]], #[[ID4]]], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%[[P]], %[[RS]], %[[BZ]], %[[CS]], %[[AZE]] : tensor<2x3x?x5xi32>, tensor<2x1x?xi32>, tensor<5xi8>, tensor<3x5xi32>, tensor<?xi8>)
// CHECK:         ^bb0(%[[ACCV:.+]]: i32, %[[RSV:.+]]: i32, %[[BZV:.+]]: i8, %[[CSV:.+]]: i32, %[[AZV:.+]]: i8, %{{.+}}: i32):
// CHECK-DAG:       %[[AZW:.+]] = arith.extui %[[AZV]] : i8 to i32
// CHECK-DAG:       %[[BZW:.+]] = arith.extsi %[[BZV]] : i8 to i32
// CHECK:           %[[T1:.+]] = arith.muli %[[BZW]], %[[RSV]] : i32
// CHECK:           %[[R1:.+]] = arith.subi %[[ACCV]], %[[T1]] : i32
// CHECK:           %[[T2:.+]] = arith.muli %[[AZW]], %[[CSV]] : i32
// CHECK:           %[[R2:.+]] = arith.subi %[[R1]], %[[T2]] : i32
// CHECK:           %[[ZZ:.+]] = arith.muli %[[AZW]], %[[BZW]] : i32
// CHECK:           %[[T3:.+]] = arith.muli %[[K]], %[[ZZ]] : i32
// CHECK:           %[[R3:.+]] = arith.addi %[[R2]], %[[T3]] : i32
// CHECK:           linalg.yield %[[R3]] : i32
// CHECK:         return %[[R]]
func.func @matmul_integer_batched(%a: tensor<2x1x?x8xui8>, %b: tensor<3x8x5xi8>, %az: tensor<?xui8>, %bz: tensor<5xi8>) -> tensor<2x3x?x5xi32> {
  %0 = quench.matmul_integer %a, %b zp(%az) rhs_zp(%bz) : (tensor<2x1x?x8xui8>, tensor<3x8x5xi8>, tensor<?xui8>, tensor<5xi8>) -> tensor<2x3x?x5xi32>
  return %0 : tensor<2x3x?x5xi32>
}

// -----

// Without zero points the contraction is the result.
// CHECK-LABEL: func.func @matmul_integer_no_zp(
// CHECK:         %[[P:.+]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK-NOT:     linalg.generic
// CHECK:         return %[[P]] : tensor<4x6xi32>
func.func @matmul_integer_no_zp(%a: tensor<4x8xi8>, %b: tensor<8x6xi8>) -> tensor<4x6xi32> {
  %0 = quench.matmul_integer %a, %b : (tensor<4x8xi8>, tensor<8x6xi8>) -> tensor<4x6xi32>
  return %0 : tensor<4x6xi32>
}

// -----

// A zero constant rhs zero point drops the row sums; a per-tensor zero
// point is read at ().
// CHECK-DAG: #[[SC:.+]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @matmul_integer_lhs_zp(
// CHECK-SAME:      %[[A:.+]]: tensor<4x8xi8>, %[[B:.+]]: tensor<8x6xi8>, %[[AZ:.+]]: tensor<i8>
// CHECK:         %[[P:.+]] = linalg.generic {{.*}} ins(%[[A]], %[[B]] :
// CHECK:         %[[CS:.+]] = linalg.generic {{.*}} ins(%[[B]] : tensor<8x6xi8>) outs(%{{.+}} : tensor<6xi32>)
// CHECK-NOT:     ins(%[[A]] :
// CHECK:         linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}, #[[SC]], #{{.+}}], {{.*}}} ins(%[[P]], %[[CS]], %[[AZ]] : tensor<4x6xi32>, tensor<6xi32>, tensor<i8>)
// CHECK:           arith.extsi {{.*}} : i8 to i32
// CHECK:           arith.muli
// CHECK:           arith.subi
// CHECK-NEXT:      linalg.yield
func.func @matmul_integer_lhs_zp(%a: tensor<4x8xi8>, %b: tensor<8x6xi8>, %az: tensor<i8>) -> tensor<4x6xi32> {
  %bz = quench.constant dense<0> : tensor<i8>
  %0 = quench.matmul_integer %a, %b zp(%az) rhs_zp(%bz) : (tensor<4x8xi8>, tensor<8x6xi8>, tensor<i8>, tensor<i8>) -> tensor<4x6xi32>
  return %0 : tensor<4x6xi32>
}

// -----

// A 1-D lhs: no m loop; its sum over K is 0-D.
// CHECK-DAG: #[[V:.+]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[B:.+]] = affine_map<(d0, d1) -> (d1, d0)>
// CHECK-DAG: #[[O:.+]] = affine_map<(d0, d1) -> (d0)>
// CHECK-DAG: #[[S0:.+]] = affine_map<(d0) -> ()>
// CHECK-LABEL: func.func @matmul_integer_vec(
// CHECK:         linalg.generic {indexing_maps = [#[[V]], #[[B]], #[[O]]], iterator_types = ["parallel", "reduction"]}
// CHECK:         linalg.generic {{.*}} outs(%{{.+}} : tensor<i32>)
// CHECK:         linalg.generic {indexing_maps = [#{{.+}}, #[[S0]], #{{.+}}, #{{.+}}], {{.*}}} ins(%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} : tensor<6xi32>, tensor<i32>, tensor<6xi8>, tensor<6xi32>
func.func @matmul_integer_vec(%a: tensor<8xui8>, %b: tensor<8x6xui8>, %az: tensor<1xui8>, %bz: tensor<6xui8>) -> tensor<6xi32> {
  %0 = quench.matmul_integer %a, %b zp(%az) rhs_zp(%bz) : (tensor<8xui8>, tensor<8x6xui8>, tensor<1xui8>, tensor<6xui8>) -> tensor<6xi32>
  return %0 : tensor<6xi32>
}

// -----

// The exact i32 product, then requantized: a_scale * b_scale / y_scale in
// that order, one f32 product, round half to even, + y_zp, saturate.
// Per-column rhs scale, 1-element vectors per tensor.
// CHECK-DAG: #[[C0:.+]] = affine_map<(d0, d1) -> (0)>
// CHECK-DAG: #[[COL:.+]] = affine_map<(d0, d1) -> (d1)>
// CHECK-LABEL: func.func @qlinear_matmul(
// CHECK-SAME:      %[[A:.+]]: tensor<2x4xi8>, %[[AS:.+]]: tensor<1xf32>, %[[AZ:.+]]: tensor<1xi8>, %[[B:.+]]: tensor<4x3xi8>, %[[BS:.+]]: tensor<3xf32>, %[[BZ:.+]]: tensor<1xi8>, %[[YS:.+]]: tensor<f32>, %[[YZ:.+]]: tensor<i8>) -> tensor<2x3xi8>
// CHECK:         %[[P:.+]] = linalg.generic {{.*}} ins(%[[A]], %[[B]] :
// CHECK:         linalg.generic {indexing_maps = [#{{.+}}, #{{.+}}, #[[C0]], #{{.+}}, #[[C0]], #[[C0]], #[[COL]], #{{.+}}, #{{.+}}, #{{.+}}], {{.*}}} ins(%[[P]], %{{.+}}, %[[BZ]], %{{.+}}, %[[AZ]], %[[AS]], %[[BS]], %[[YS]], %[[YZ]] :
// CHECK:         ^bb0(%{{.+}}: i32, %{{.+}}: i32, %{{.+}}: i8, %{{.+}}: i32, %{{.+}}: i8, %[[ASV:.+]]: f32, %[[BSV:.+]]: f32, %[[YSV:.+]]: f32, %[[YZV:.+]]: i8, %{{.+}}: i8):
// CHECK:           %[[ACC:.+]] = arith.addi
// CHECK:           %[[AB:.+]] = arith.mulf %[[ASV]], %[[BSV]] : f32
// CHECK:           %[[MUL:.+]] = arith.divf %[[AB]], %[[YSV]] : f32
// CHECK:           %[[F:.+]] = arith.sitofp %[[ACC]] : i32 to f32
// CHECK:           %[[V:.+]] = arith.mulf %[[F]], %[[MUL]] : f32
// CHECK:           %[[R:.+]] = math.roundeven %[[V]] : f32
// CHECK:           %[[Z:.+]] = arith.sitofp %[[YZV]] : i8 to f32
// CHECK:           arith.addf %[[R]], %[[Z]] : f32
// CHECK:           arith.constant -1.280000e+02 : f32
// CHECK:           arith.constant 1.270000e+02 : f32
// CHECK:           arith.trunci {{.*}} : i32 to i8
func.func @qlinear_matmul(%a: tensor<2x4xui8>, %as: tensor<1xf32>, %az: tensor<1xui8>, %b: tensor<4x3xui8>, %bs: tensor<3xf32>, %bz: tensor<1xui8>, %ys: tensor<f32>, %yz: tensor<i8>) -> tensor<2x3xi8> {
  %0 = quench.qlinear_matmul %a, %as, %az, %b, %bs, %bz, %ys, %yz : (tensor<2x4xui8>, tensor<1xf32>, tensor<1xui8>, tensor<4x3xui8>, tensor<3xf32>, tensor<1xui8>, tensor<f32>, tensor<i8>) -> tensor<2x3xi8>
  return %0 : tensor<2x3xi8>
}
