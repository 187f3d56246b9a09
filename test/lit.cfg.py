# -*- Python -*-
# lit configuration of the Quench unit suite.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "Quench"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".onnxtxt"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py",
                   "Inputs", "conformance", "models", "e2e"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.quench_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%quench_python", config.quench_python))
llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.quench_tools_dir, config.llvm_tools_dir]
tools = ["quench-opt", "quench-import", "quench-compile"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

# `REQUIRES: ptxas`: the CUDA Toolkit's assembler and fatbinary, where
# quench-compile --target=cuda looks for them ($CUDA_HOME, /usr/local/cuda).
def _cuda_toolkit():
    for d in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if d and all(os.access(os.path.join(d, "bin", t), os.X_OK)
                     for t in ("ptxas", "fatbinary")):
            return d
    return None
if _cuda_toolkit():
    config.available_features.add("ptxas")
if "CUDA_HOME" in os.environ:
    config.environment["CUDA_HOME"] = os.environ["CUDA_HOME"]
