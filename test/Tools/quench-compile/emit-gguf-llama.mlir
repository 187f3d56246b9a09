// --emit=gguf of models that are not GGUF files: the LLaMA decoder is
// recognized by structure (lib/Frontend/GGUF/GGUFExportLlama.cpp); what does
// not match is one error naming it, and no file is written.
// (Exports of real models: test/e2e/gguf_export_onnx.py.)

// RUN: rm -rf %t && mkdir -p %t
// RUN: not quench-compile %s --entry=relu -o %t/x.gguf --emit=gguf 2>&1 | FileCheck %s --check-prefix=RELU --implicit-check-not=error:
// RELU: error: {{.*}}--emit=gguf: '{{.*}}emit-gguf-llama.mlir' is not recognized as a LLaMA decoder (GGUF architecture 'llama'): the first result (logits) is not a linear layer's output (the LM head)
// RUN: not quench-compile %s --entry=nolayers -o %t/x.gguf --emit=gguf 2>&1 | FileCheck %s --check-prefix=NOLAYERS --implicit-check-not=error:
// NOLAYERS: error: {{.*}}--emit=gguf: {{.*}}: the layers are not pairs of an attention and a feed-forward block
// RUN: not quench-compile %s --entry=silu_ffn -o %t/x.gguf --emit=gguf 2>&1 | FileCheck %s --check-prefix=FFN --implicit-check-not=error:
// FFN: error: {{.*}}--emit=gguf: {{.*}}: the down projection's input is not a product (SwiGLU: silu(gate(x)) * up(x))
// RUN: not quench-compile %s --entry=plain_norm -o %t/x.gguf --emit=gguf 2>&1 | FileCheck %s --check-prefix=NORM --implicit-check-not=error:
// NORM: error: {{.*}}--emit=gguf: {{.*}}: the LM head's input is not an RMSNorm
// RUN: not ls %t/x.gguf

func.func @relu(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %0 = quench.relu %x : tensor<2x3xf32>
  return %0 : tensor<2x3xf32>
}

func.func @nolayers(%ids: tensor<1x4xi64>) -> tensor<1x4x16xf32> {
  %table = quench.constant dense<0.5> : tensor<16x32xf32>
  %scale = quench.constant dense<1.0> : tensor<32xf32>
  %head = quench.constant dense<0.25> : tensor<16x32xf32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x32xf32>, tensor<1x4xi64>) -> tensor<1x4x32xf32>
  %n = quench.rms_norm %x, %scale {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x4x32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
  %y = quench.linear %n, %head : (tensor<1x4x32xf32>, tensor<16x32xf32>) -> tensor<1x4x16xf32>
  return %y : tensor<1x4x16xf32>
}

// A feed-forward block silu(up(x)) without the gate product.
func.func @silu_ffn(%ids: tensor<1x4xi64>) -> tensor<1x4x16xf32> {
  %table = quench.constant dense<0.5> : tensor<16x32xf32>
  %scale = quench.constant dense<1.0> : tensor<32xf32>
  %up = quench.constant dense<0.125> : tensor<64x32xf32>
  %down = quench.constant dense<0.0625> : tensor<32x64xf32>
  %head = quench.constant dense<0.25> : tensor<16x32xf32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x32xf32>, tensor<1x4xi64>) -> tensor<1x4x32xf32>
  %h = quench.rms_norm %x, %scale {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x4x32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
  %u = quench.linear %h, %up : (tensor<1x4x32xf32>, tensor<64x32xf32>) -> tensor<1x4x64xf32>
  %g = quench.silu %u : tensor<1x4x64xf32>
  %d = quench.linear %g, %down : (tensor<1x4x64xf32>, tensor<32x64xf32>) -> tensor<1x4x32xf32>
  %x1 = quench.add %x, %d : (tensor<1x4x32xf32>, tensor<1x4x32xf32>) -> tensor<1x4x32xf32>
  %n = quench.rms_norm %x1, %scale {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x4x32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
  %y = quench.linear %n, %head : (tensor<1x4x32xf32>, tensor<16x32xf32>) -> tensor<1x4x16xf32>
  return %y : tensor<1x4x16xf32>
}

// LayerNorm before the head (GPT-2 style).
func.func @plain_norm(%ids: tensor<1x4xi64>) -> tensor<1x4x16xf32> {
  %table = quench.constant dense<0.5> : tensor<16x32xf32>
  %scale = quench.constant dense<1.0> : tensor<32xf32>
  %head = quench.constant dense<0.25> : tensor<16x32xf32>
  %x = quench.gather %table[%ids] {axis = 0 : i64} : (tensor<16x32xf32>, tensor<1x4xi64>) -> tensor<1x4x32xf32>
  %n = quench.layer_norm %x, %scale {axis = 2 : i64, epsilon = 1.0e-5 : f64} : (tensor<1x4x32xf32>, tensor<32xf32>) -> tensor<1x4x32xf32>
  %y = quench.linear %n, %head : (tensor<1x4x32xf32>, tensor<16x32xf32>) -> tensor<1x4x16xf32>
  return %y : tensor<1x4x16xf32>
}
