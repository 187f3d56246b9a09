// RUN: quench-opt --convert-quench-to-linalg --split-input-file %s | FileCheck %s

// Elementwise ops, casts and constants; see contractions.mlir and shapes.mlir
// for the rest of convert-quench-to-linalg.

// CHECK-DAG: #[[ID3:.+]] = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
// CHECK-DAG: #[[BC3:.+]] = affine_map<(d0, d1, d2) -> (d0, 0, d2)>
// CHECK-LABEL: func.func @add_broadcast_dynamic(
// CHECK-SAME:      %[[A:.+]]: tensor<?x?x4xf32>, %[[B:.+]]: tensor<?x1x4xf32>
// CHECK-DAG:     %[[D0:.+]] = tensor.dim %[[A]], %c0
// CHECK-DAG:     %[[D1:.+]] = tensor.dim %[[A]], %c1
// CHECK:         %[[E:.+]] = tensor.empty(%[[D0]], %[[D1]]) : tensor<?x?x4xf32>
// CHECK:         %[[R:.+]] = linalg.generic {indexing_maps = [#[[ID3]], #[[BC3]], #[[ID3]]], iterator_types = ["parallel", "parallel", "parallel"]}
// CHECK-SAME:        ins(%[[A]], %[[B]] : tensor<?x?x4xf32>, tensor<?x1x4xf32>) outs(%[[E]] : tensor<?x?x4xf32>)
// CHECK:           arith.addf
// CHECK:         return %[[R]]
func.func @add_broadcast_dynamic(%a: tensor<?x?x4xf32>, %b: tensor<?x1x4xf32>) -> tensor<?x?x4xf32> {
  %0 = quench.add %a, %b : (tensor<?x?x4xf32>, tensor<?x1x4xf32>) -> tensor<?x?x4xf32>
  return %0 : tensor<?x?x4xf32>
}

// -----

// Integer Mod: a run-time check that no divisor is 0 (one reduction, then
// cf.assert), then the remainder, dividing by 1 where the divisor is -1
// (INT_MIN rem -1 traps; the remainder is 0 either way).
// CHECK-LABEL: func.func @mod_int(
// CHECK-SAME:      %[[A:.+]]: tensor<4xi32>, %[[B:.+]]: tensor<4xi32>
// CHECK:         %[[FLAGS:.+]]:2 = linalg.generic {{.*}}iterator_types = ["reduction"]} ins(%[[A]], %[[B]] : tensor<4xi32>, tensor<4xi32>)
// CHECK:         %[[ZERO:.+]] = tensor.extract %[[FLAGS]]#0[]
// CHECK:         %[[OK:.+]] = arith.xori %[[ZERO]], %{{.+}} : i1
// CHECK:         cf.assert %[[OK]], "an integer division (Mod): integer division by zero at run time (a divisor is 0)"
// CHECK-NOT:     cf.assert
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel"]}
// CHECK:         ^bb0(%[[X:.+]]: i32, %[[Y:.+]]: i32, %{{.+}}: i32):
// CHECK:           %[[M1:.+]] = arith.cmpi eq, %[[Y]], %{{.+}} : i32
// CHECK:           %[[D:.+]] = arith.select %[[M1]], %{{.+}}, %[[Y]] : i32
// CHECK:           %[[REM:.+]] = arith.remsi %[[X]], %[[D]] : i32
// CHECK:           %[[FIX:.+]] = arith.andi
// CHECK:           %[[ADJ:.+]] = arith.addi %[[REM]], %[[Y]]
// CHECK:           arith.select %[[FIX]], %[[ADJ]], %[[REM]]
func.func @mod_int(%a: tensor<4xi32>, %b: tensor<4xi32>) -> tensor<4xi32> {
  %0 = quench.mod %a, %b : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi32>
  return %0 : tensor<4xi32>
}

// -----

// Unsigned tensors become signless, signatures included; the arithmetic
// stays unsigned.
// Unsigned division cannot overflow: the zero check only.
// CHECK-LABEL: func.func @div_unsigned(
// CHECK-SAME:      %[[A:.+]]: tensor<4xi8>, %[[B:.+]]: tensor<i8>) -> tensor<4xi8>
// CHECK:         linalg.generic {{.*}}iterator_types = ["reduction"]} ins(%[[A]], %[[B]] : tensor<4xi8>, tensor<i8>)
// CHECK:         cf.assert %{{.+}}, "an integer division (Div): integer division by zero at run time (a divisor is 0)"
// CHECK-NOT:     cf.assert
// CHECK:         %[[R:.+]] = linalg.generic {{.*}} ins(%[[A]], %[[B]] : tensor<4xi8>, tensor<i8>)
// CHECK:           arith.divui
// CHECK:         return %[[R]]
func.func @div_unsigned(%a: tensor<4xui8>, %b: tensor<ui8>) -> tensor<4xui8> {
  %0 = quench.div %a, %b : (tensor<4xui8>, tensor<ui8>) -> tensor<4xui8>
  return %0 : tensor<4xui8>
}

// -----

// Signed division with run-time broadcasting: the broadcast check first,
// then one reduction over both operands (the division's maps) for a 0
// divisor and INT64_MIN / -1, then the division.
// CHECK-DAG: #[[ID2:.+]] = affine_map<(d0, d1) -> (d0, d1)>
// CHECK-DAG: #[[ROW:.+]] = affine_map<(d0, d1) -> (d1)>
// CHECK-DAG: #[[SCALAR:.+]] = affine_map<(d0, d1) -> ()>
// CHECK-LABEL: func.func @div_signed_broadcast(
// CHECK-SAME:      %[[A:.+]]: tensor<?x4xi64>, %[[B:.+]]: tensor<4xi64>
// CHECK:         %[[FLAGS:.+]]:2 = linalg.generic {indexing_maps = [#[[ID2]], #[[ROW]], #[[SCALAR]], #[[SCALAR]]], iterator_types = ["reduction", "reduction"]} ins(%[[A]], %[[B]] : tensor<?x4xi64>, tensor<4xi64>)
// CHECK:         ^bb0(%[[X:.+]]: i64, %[[Y:.+]]: i64, %{{.+}}: i1, %{{.+}}: i1):
// CHECK:           %[[ISZERO:.+]] = arith.cmpi eq, %[[Y]], %{{.+}} : i64
// CHECK:           %[[ISMIN:.+]] = arith.cmpi eq, %[[X]], %{{.+}} : i64
// CHECK:           %[[ISM1:.+]] = arith.cmpi eq, %[[Y]], %{{.+}} : i64
// CHECK:           %[[OVF:.+]] = arith.andi %[[ISMIN]], %[[ISM1]] : i1
// CHECK:           %[[Z:.+]] = arith.ori %{{.+}}, %[[ISZERO]] : i1
// CHECK:           %[[O:.+]] = arith.ori %{{.+}}, %[[OVF]] : i1
// CHECK:           linalg.yield %[[Z]], %[[O]] : i1, i1
// CHECK:         cf.assert %{{.+}}, "node 'div' (Div): integer division by zero at run time (a divisor is 0)"
// CHECK:         cf.assert %{{.+}}, "node 'div' (Div): integer division overflows at run time (the most negative value divided by -1)"
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel"]} ins(%[[A]], %[[B]] : tensor<?x4xi64>, tensor<4xi64>)
// CHECK:           arith.divsi
func.func @div_signed_broadcast(%a: tensor<?x4xi64>, %b: tensor<4xi64>) -> tensor<?x4xi64> {
  %0 = quench.div %a, %b : (tensor<?x4xi64>, tensor<4xi64>) -> tensor<?x4xi64> loc("div"("Div"))
  return %0 : tensor<?x4xi64>
}

// -----

// A constant divisor without 0 and -1 needs no check; one with -1 does.
// CHECK-LABEL: func.func @div_by_constant(
// CHECK-NOT:     cf.assert
// CHECK:         arith.divsi
// CHECK-LABEL: func.func @div_by_minus_one(
// CHECK:         cf.assert {{.*}} "an integer division (Div): integer division overflows at run time
// CHECK:         arith.divsi
func.func @div_by_constant(%a: tensor<3xi32>) -> tensor<3xi32> {
  %c = quench.constant dense<[2, -3, 7]> : tensor<3xi32>
  %0 = quench.div %a, %c : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  return %0 : tensor<3xi32>
}
func.func @div_by_minus_one(%a: tensor<3xi32>) -> tensor<3xi32> {
  %c = quench.constant dense<[2, -1, 7]> : tensor<3xi32>
  %0 = quench.div %a, %c : (tensor<3xi32>, tensor<3xi32>) -> tensor<3xi32>
  return %0 : tensor<3xi32>
}

// -----

// CHECK-LABEL: func.func @max_float(
// CHECK:           arith.maximumf
func.func @max_float(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %0 = quench.max %a, %b : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @cmp_where(
// CHECK:         %[[C:.+]] = linalg.generic
// CHECK:           arith.cmpf olt
// CHECK:         } -> tensor<?xi1>
// CHECK:         linalg.generic {{.*}} ins(%[[C]], %{{.*}}, %{{.*}} : tensor<?xi1>, tensor<?xf32>, tensor<?xf32>)
// CHECK:           arith.select
func.func @cmp_where(%a: tensor<?xf32>, %b: tensor<?xf32>) -> tensor<?xf32> {
  %c = quench.cmp lt, %a, %b : (tensor<?xf32>, tensor<?xf32>) -> tensor<?xi1>
  %0 = quench.where %c, %a, %b : (tensor<?xi1>, tensor<?xf32>, tensor<?xf32>) -> tensor<?xf32>
  return %0 : tensor<?xf32>
}

// -----

// CHECK-LABEL: func.func @gelu_f16(
// CHECK:           %[[X:.+]] = arith.extf %{{.*}} : f16 to f32
// CHECK:           %[[S:.+]] = arith.mulf %[[X]], %{{.*}} : f32
// CHECK:           math.erf %[[S]] : f32
// CHECK:           arith.addf
// CHECK-NEXT:      %[[Y:.+]] = arith.mulf
// CHECK-NEXT:      arith.truncf %[[Y]] : f32 to f16
func.func @gelu_f16(%a: tensor<8xf16>) -> tensor<8xf16> {
  %0 = quench.gelu %a : tensor<8xf16>
  return %0 : tensor<8xf16>
}

// -----

// CHECK-LABEL: func.func @clip(
// CHECK:           %[[LO:.+]] = arith.constant -1.0{{0*}}e+00 : f32
// CHECK:           %[[M:.+]] = arith.maximumf %{{.*}}, %[[LO]]
// CHECK:           %[[HI:.+]] = arith.constant 6.0{{0*}}e+00 : f32
// CHECK:           arith.minimumf %[[M]], %[[HI]]
func.func @clip(%a: tensor<8xf32>) -> tensor<8xf32> {
  %0 = quench.clip %a {min = -1.0 : f64, max = 6.0 : f64} : tensor<8xf32>
  return %0 : tensor<8xf32>
}

// -----

// CHECK-LABEL: func.func @cast_f32_to_ui8(
// CHECK:           %[[T:.+]] = arith.fptoui %[[X:.+]] : f32 to i8
// CHECK:           %[[BIG:.+]] = arith.cmpf oge, %[[X]], %{{.*}} : f32
// CHECK:           %[[SMALL:.+]] = arith.cmpf ult, %[[X]], %{{.*}} : f32
// CHECK:           %[[S1:.+]] = arith.select %[[BIG]], %c-1_i8, %[[T]]
// CHECK:           arith.select %[[SMALL]], %c0_i8, %[[S1]]
// CHECK:         } -> tensor<8xi8>
func.func @cast_f32_to_ui8(%a: tensor<8xf32>) -> tensor<8xui8> {
  %0 = quench.cast %a : tensor<8xf32> to tensor<8xui8>
  return %0 : tensor<8xui8>
}

// -----

// CHECK-LABEL: func.func @cast_i64_to_bool(
// CHECK:           arith.cmpi ne, %{{.*}}, %c0_i64 : i64
func.func @cast_i64_to_bool(%a: tensor<8xi64>) -> tensor<8xi1> {
  %0 = quench.cast %a : tensor<8xi64> to tensor<8xi1>
  return %0 : tensor<8xi1>
}

// -----

// The blob stays a blob.
// CHECK-LABEL: func.func @constant_resource(
// CHECK:         arith.constant dense_resource<blob> : tensor<2xf32>
func.func @constant_resource() -> tensor<2xf32> {
  %0 = quench.constant dense_resource<blob> : tensor<2xf32>
  return %0 : tensor<2xf32>
}

{-#
  dialect_resources: {
    builtin: {
      blob: "0x040000000000803F00000040"
    }
  }
#-}

// -----

// Ops with !quant.uniform element types are not converted yet: they stay,
// next to converted code.
// CHECK-LABEL: func.func @quant_unconverted(
// CHECK:         %[[R:.+]] = quench.reshape %arg0
// CHECK:         linalg.generic {{.*}} ins(%arg1 : tensor<4xf32>)
// CHECK:           math.exp
// CHECK:         return %[[R]],
func.func @quant_unconverted(%q: tensor<4x!quant.uniform<i8:f32, 0.5:3>>, %x: tensor<4xf32>) -> (tensor<2x2x!quant.uniform<i8:f32, 0.5:3>>, tensor<4xf32>) {
  %r = quench.reshape %q : tensor<4x!quant.uniform<i8:f32, 0.5:3>> -> tensor<2x2x!quant.uniform<i8:f32, 0.5:3>>
  %e = quench.exp %x : tensor<4xf32>
  return %r, %e : tensor<2x2x!quant.uniform<i8:f32, 0.5:3>>, tensor<4xf32>
}

// -----

// Unsigned constant data is retyped signless, bit for bit.
// CHECK-LABEL: func.func @constant_unsigned(
// CHECK-SAME:      -> tensor<2xi8>
// CHECK:         %[[C:.+]] = arith.constant dense<[1, -56]> : tensor<2xi8>
// CHECK:         return %[[C]]
func.func @constant_unsigned() -> tensor<2xui8> {
  %0 = quench.constant dense<[1, 200]> : tensor<2xui8>
  return %0 : tensor<2xui8>
}

// -----

// quench.hadamard of order 4 with stride 3 over 12 features: two butterfly
// stages, pairs 3 then 6 features apart; each reads the previous stage's
// features a * 2hM + c and a * 2hM + hM + c and writes their sum (t = 0)
// and difference (t = 1) into [rows, 12 / 2hM, 2, hM].
// CHECK-DAG: #[[U1:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1 * 6 + d3)>
// CHECK-DAG: #[[V1:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1 * 6 + d3 + 3)>
// CHECK-DAG: #[[U2:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1 * 12 + d3)>
// CHECK-DAG: #[[V2:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1 * 12 + d3 + 6)>
// CHECK-LABEL: func.func @hadamard(
// CHECK-SAME:      %[[X:.+]]: tensor<?x12xf32>
// CHECK:         %[[E1:.+]] = tensor.empty(%{{.+}}) : tensor<?x2x2x3xf32>
// CHECK:         %[[S1:.+]] = linalg.generic {indexing_maps = [#[[U1]], #[[V1]], #{{.+}}], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
// CHECK-SAME:        ins(%[[X]], %[[X]] : tensor<?x12xf32>, tensor<?x12xf32>) outs(%[[E1]] : tensor<?x2x2x3xf32>)
// CHECK:           %[[SUM:.+]] = arith.addf
// CHECK:           %[[DIFF:.+]] = arith.subf
// CHECK:           linalg.index 2
// CHECK:           arith.select %{{.+}}, %[[SUM]], %[[DIFF]]
// CHECK:         %[[C1:.+]] = tensor.collapse_shape %[[S1]] {{\[}}[0], [1, 2, 3]] : tensor<?x2x2x3xf32> into tensor<?x12xf32>
// CHECK:         %[[S2:.+]] = linalg.generic {indexing_maps = [#[[U2]], #[[V2]], #{{.+}}]
// CHECK-SAME:        ins(%[[C1]], %[[C1]] : tensor<?x12xf32>, tensor<?x12xf32>) outs(%{{.+}} : tensor<?x1x2x6xf32>)
// CHECK:         %[[C2:.+]] = tensor.collapse_shape %[[S2]]
// CHECK:         return %[[C2]]
func.func @hadamard(%x: tensor<?x12xf32>) -> tensor<?x12xf32> {
  %0 = quench.hadamard %x {order = 4 : i64} : tensor<?x12xf32>
  return %0 : tensor<?x12xf32>
}
