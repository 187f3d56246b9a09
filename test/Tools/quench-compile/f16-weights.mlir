// An f16 weight cast to f32 (what mixed-precision exporters write) is not
// folded into an f32 copy at compile time: the only weight constant down to
// the LLVM dialect is the f16 one, and the cast happens on vector loads
// inside the matmul kernel. (Folding it would double a 7B f16 model's
// memory at --quant=none; docs/scaling.md.) quench-raise-ops makes the f16
// constant the weight of a quench.linear (in f16, computed in f32; read
// through a transpose, never copied), so --quant quantizes it from its f16
// values.
// RUN: quench-compile %s -o - --stop-after-stage=to-llvm | FileCheck %s
// CHECK: llvm.mlir.global private constant @{{.*}}(dense_resource<[[W:.*]]> : tensor<8x16xf16>)
// CHECK-NOT: llvm.mlir.global {{.*}}xf32>
// CHECK: llvm.fpext %{{.*}} : vector<{{[0-9]+}}xf16> to vector<{{[0-9]+}}xf32>
// CHECK-NOT: llvm.mlir.global {{.*}}xf32>
// CHECK: [[W]]: "0x08000000
// RUN: quench-compile %s -o - --stop-after-stage=prepare | FileCheck %s --check-prefix=PREP
// PREP: %[[C:.*]] = quench.constant dense_resource<initializer__W_> : tensor<8x16xf16>
// PREP: %[[W:.*]] = quench.transpose %[[C]] {permutation = array<i64: 1, 0>} : tensor<8x16xf16> -> tensor<16x8xf16>
// PREP: quench.linear %arg0, %[[W]] : (tensor<1x8xf32>, tensor<16x8xf16>) -> tensor<1x16xf32>
// PREP-NOT: quench.cast
// PREP-NOT: dense_resource<{{.*}}> : tensor<16x8xf16>
// RUN: quench-compile %s -o - --stop-after-stage=to-linalg | FileCheck %s --check-prefix=LINALG
// LINALG-NOT: linalg.transpose
// LINALG: %[[C:.*]] = arith.constant dense_resource<initializer__W_> : tensor<8x16xf16>
// LINALG-NOT: linalg.transpose
// LINALG: linalg.generic {{.*}} ins(%arg0, %[[C]] : tensor<1x8xf32>, tensor<8x16xf16>)
// LINALG-NOT: linalg.transpose
// RUN: quench-compile %s -o - --stop-after-stage=quantize --quant=w4a16 --group-size=8 | FileCheck %s --check-prefix=QUANT
// QUANT: quench.matmul_nbits %arg0, {{.*}} {bits = 4 : i64, block_size = 8 : i64, in_features = 8 : i64, out_features = 16 : i64} : (tensor<1x8xf32>, tensor<16x1x4xui8>, tensor<16x1xf16>) -> tensor<1x16xf32>
// QUANT-NOT: quench.linear
// QUANT-NOT: xf16>
// RUN: quench-compile %s -o %t.exe --quant=w8a16 --group-size=8 | FileCheck %s --check-prefix=REPORT
// REPORT: size report (--quant=w8a16)
// REPORT: {{.*}} 16x8 int8 g8 sym f16 256 {{.*}}
// REPORT: linear weights 256 {{.*}}

func.func @main(%arg0: tensor<1x8xf32> {quench.name = "X"}) -> (tensor<1x16xf32> {quench.name = "Y"}) {
  %0 = quench.constant dense_resource<initializer__W_> : tensor<8x16xf16>
  %1 = quench.cast %0 : tensor<8x16xf16> to tensor<8x16xf32>
  %2 = quench.matmul %arg0, %1 : (tensor<1x8xf32>, tensor<8x16xf32>) -> tensor<1x16xf32>
  return %2 : tensor<1x16xf32>
}

{-#
  dialect_resources: {
    builtin: {
      initializer__W_: "0x08000000000000240028002A002C002D002E002F00308030003180310032803200338033003440348034C034003540358035C035003640368036C036003740378037C03700382038403860388038A038C038E03800392039403960398039A039C039E039003A203A403A603A803AA03AC03AE03A003B203B403B603B803BA03BC03BE03B003C103C203C303C403C503C603C703C803C903CA03CB03CC03CD03CE03CF03C003D103D203D303D403D503D603D703D803D903DA03DB03DC03DD03DE03DF03D003E103E203E303E403E503E603E703E803E903EA03EB03EC03ED03EE03EF03E003F103F203F303F403F503F603F703F803F903FA03FB03FC03FD03FE03FF03F"
    }
  }
#-}
