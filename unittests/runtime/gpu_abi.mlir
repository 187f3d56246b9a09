// Host code of GPU programs, lowered at build time by MLIR 22's own passes
// the way --target=cuda lowers models (gpu-async-region, gpu-to-llvm,
// gpu.binary embedding; PTX so that no CUDA toolkit is needed), linked
// into quench-cuda-abi-tests and run on the fake driver: the mgpu* calls
// MLIR emits must match runtime/lib/cuda.c (names, argument order, units).
module attributes {gpu.container_module} {
  // Synchronous ops, made asynchronous on one stream by gpu-async-region:
  // h = 2 * h (the fake runs kernel "twice" on the host).
  func.func @scale(%h: memref<16xf32>) {
    %c1 = arith.constant 1 : index
    %c16 = arith.constant 16 : index
    %d = gpu.alloc () : memref<16xf32>
    gpu.memcpy %d, %h : memref<16xf32>, memref<16xf32>
    gpu.launch_func @kernels::@twice blocks in (%c1, %c1, %c1)
        threads in (%c16, %c1, %c1) args(%d : memref<16xf32>)
    gpu.memcpy %h, %d : memref<16xf32>, memref<16xf32>
    gpu.dealloc %d : memref<16xf32>
    return
  }

  // Two chains joined through an event: a = 7 (i16), b = 1.5 (f32).
  func.func @fill(%a: memref<16xi16>, %b: memref<16xf32>) {
    %seven = arith.constant 7 : i16
    %x = arith.constant 1.5 : f32
    %t0 = gpu.wait async
    %da, %t1 = gpu.alloc async [%t0] () : memref<16xi16>
    %t2 = gpu.memset async [%t1] %da, %seven : memref<16xi16>, i16
    %t3 = gpu.wait async
    %db, %t4 = gpu.alloc async [%t3] () : memref<16xf32>
    %t5 = gpu.memset async [%t4] %db, %x : memref<16xf32>, f32
    %tj = gpu.wait async [%t2, %t5]
    %t6 = gpu.memcpy async [%tj] %a, %da : memref<16xi16>, memref<16xi16>
    %t7 = gpu.memcpy async [%t6] %b, %db : memref<16xf32>, memref<16xf32>
    %t8 = gpu.dealloc async [%t7] %da : memref<16xi16>
    %t9 = gpu.dealloc async [%t8] %db : memref<16xf32>
    gpu.wait [%t9]
    return
  }

  // A launch with thread block clusters, 64 bytes of dynamic shared memory.
  func.func @cluster(%h: memref<16xf32>) {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c8 = arith.constant 8 : index
    %smem = arith.constant 64 : i32
    %d = gpu.alloc () : memref<16xf32>
    gpu.memcpy %d, %h : memref<16xf32>, memref<16xf32>
    gpu.launch_func @kernels::@twice clusters in (%c2, %c1, %c1)
        blocks in (%c2, %c1, %c1) threads in (%c8, %c1, %c1)
        dynamic_shared_memory_size %smem args(%d : memref<16xf32>)
    gpu.memcpy %h, %d : memref<16xf32>, memref<16xf32>
    gpu.dealloc %d : memref<16xf32>
    return
  }

  gpu.module @kernels {
    gpu.func @twice(%a: memref<16xf32>) kernel {
      %i = gpu.thread_id x
      %v = memref.load %a[%i] : memref<16xf32>
      %w = arith.addf %v, %v : f32
      memref.store %w, %a[%i] : memref<16xf32>
      gpu.return
    }
  }
}
