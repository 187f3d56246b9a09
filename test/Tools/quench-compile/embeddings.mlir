// --quant-embeddings[=int8|int4|int2] and --embedding-group-size: the table
// is looked up as quantized rows (docs/quantization.md, "Embedding
// tables"), the size report lists it and totals it apart from the linears;
// bad values are one clear error.

// RUN: rm -rf %t && mkdir -p %t
// RUN: quench-compile %s -o %t/x.mlir --emit=mlir --stop-after-stage=quantize --quant=w8a16 --quant-embeddings=int4 | FileCheck %s --check-prefix=REPORT
// REPORT: /tok/Gather {{ *}}64x96 {{ *}}int4 g32 sym f16 (embedding) {{ *}}24576 {{ *}}3456 {{ *}}7.11x
// REPORT: linear weights {{ *}}12288 {{ *}}3136
// REPORT: embedding tables {{ *}}24576 {{ *}}3456
// REPORT: bits per embedding weight: 4.500
// RUN: FileCheck %s --check-prefix=IR < %t/x.mlir
// IR-DAG: quench.gather %{{.*}}[%arg0] {axis = 0 : i64} : (tensor<64x3x16xui8>, tensor<1x5xi64>) -> tensor<1x5x3x16xui8>
// IR-DAG: quench.gather %{{.*}}[%arg0] {axis = 0 : i64} : (tensor<64x3xf16>, tensor<1x5xi64>) -> tensor<1x5x3xf16>
// IR: quench.dequantize_nbits {{.*}} {bits = 4 : i64, block_size = 32 : i64} : (tensor<1x5x3x16xui8>, tensor<1x5x3xf16>) -> tensor<1x5x96xf32>

// Without the option the table is reported as float.
// RUN: quench-compile %s -o %t/y.mlir --emit=mlir --stop-after-stage=quantize --quant=w8a16 | FileCheck %s --check-prefix=FLOAT
// FLOAT: /tok/Gather {{ *}}64x96 {{ *}}float (embedding) {{ *}}24576 {{ *}}24576
// FLOAT: embedding tables {{ *}}24576 {{ *}}24576
// FLOAT: bits per embedding weight: 32.000

// RUN: quench-compile %s -o %t/z.mlir --emit=mlir --stop-after-stage=quantize --quant=w8a16 --quant-embeddings=int2 --embedding-group-size=16 | FileCheck %s --check-prefix=INT2
// INT2: /tok/Gather {{ *}}64x96 {{ *}}int2 g16 sym f16 (embedding) {{ *}}24576 {{ *}}2304

// RUN: not quench-compile %s -o %t/e --quant=w8a16 --quant-embeddings=int3 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: error: --quant-embeddings must be int8, int4 or int2, got 'int3'
// RUN: not quench-compile %s -o %t/e --quant=w8a16 --embedding-group-size=32 2>&1 | FileCheck %s --check-prefix=NOEMB
// NOEMB: error: --embedding-group-size needs --quant-embeddings
// RUN: not quench-compile %s -o %t/e --quant=w8a16 --quant-embeddings=int2 --embedding-group-size=6 2>&1 | FileCheck %s --check-prefix=GROUP
// GROUP: error: --embedding-group-size must be 0 (per row) or a positive multiple of 4 up to 16777216, got 6
// RUN: not quench-compile %s -o %t/e --quant=w8a16 --quant-embeddings=int4 --embedding-group-size=-2 2>&1 | FileCheck %s --check-prefix=NEG
// NEG: error: --embedding-group-size must be >= 0, got -2
// RUN: not quench-compile %s -o %t/e --quant-embeddings=int4 --embedding-group-size=32 2>&1 | FileCheck %s --check-prefix=NOQUANT
// NOQUANT: error: --quant-embeddings and --embedding-group-size need --quant (e.g. --quant=w4a16)
// RUN: ls %t | FileCheck %s --check-prefix=FILES
// FILES-NOT: {{^e$}}

func.func @main(%ids: tensor<1x5xi64> {quench.name = "ids"}) -> (tensor<1x5x32xf32> {quench.name = "y"}) {
  %t = quench.constant dense<0.5> : tensor<64x96xf32>
  %w = quench.constant dense<0.25> : tensor<32x96xf32>
  %e = quench.gather %t[%ids] {axis = 0 : i64} : (tensor<64x96xf32>, tensor<1x5xi64>) -> tensor<1x5x96xf32> loc("/tok/Gather")
  %y = quench.linear %e, %w : (tensor<1x5x96xf32>, tensor<32x96xf32>) -> tensor<1x5x32xf32> loc("/proj/MatMul")
  return %y : tensor<1x5x32xf32>
}
