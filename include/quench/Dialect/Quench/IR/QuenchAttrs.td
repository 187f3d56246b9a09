//===- QuenchAttrs.td - quench enums and attributes --------*- tablegen -*-===//
//
// Typed enumerations used by quench ops (never string-typed configuration).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHATTRS_TD
#define QUENCH_DIALECT_QUENCH_IR_QUENCHATTRS_TD

include "mlir/IR/EnumAttr.td"

def Quench_ReduceKind : I64EnumAttr<"ReduceKind", "reduction combiner", [
    I64EnumAttrCase<"sum", 0>,
    I64EnumAttrCase<"mean", 1>,
    I64EnumAttrCase<"max", 2>,
    I64EnumAttrCase<"min", 3>,
    I64EnumAttrCase<"prod", 4>,
  ]> {
  let cppNamespace = "::quench";
}

def Quench_CmpPredicate : I64EnumAttr<"CmpPredicate", "comparison predicate", [
    I64EnumAttrCase<"eq", 0>,
    I64EnumAttrCase<"ne", 1>,
    I64EnumAttrCase<"lt", 2>,
    I64EnumAttrCase<"le", 3>,
    I64EnumAttrCase<"gt", 4>,
    I64EnumAttrCase<"ge", 5>,
  ]> {
  let cppNamespace = "::quench";
}

def Quench_GeluApproximation : I64EnumAttr<"GeluApproximation",
    "GELU formulation", [
    I64EnumAttrCase<"none", 0>,
    I64EnumAttrCase<"tanh", 1>,
  ]> {
  let cppNamespace = "::quench";
}

def Quench_LogicalKind : I64EnumAttr<"LogicalKind", "boolean combiner", [
    I64EnumAttrCase<"and_", 0, "and">,
    I64EnumAttrCase<"or_", 1, "or">,
    I64EnumAttrCase<"xor_", 2, "xor">,
  ]> {
  let cppNamespace = "::quench";
}

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHATTRS_TD
