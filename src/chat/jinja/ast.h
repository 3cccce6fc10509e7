// Syntax tree of a Jinja template, produced by parse() and walked by the Interpreter.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja/value.h"

namespace kexa::jinja {

struct Pos {
  int line = 1;
  int col = 1;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct CallArgs {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star;         // f(*xs)
  ExprPtr double_star;  // f(**kw)
};

struct Expr {
  enum class Type {
    Literal, Name, List, Tuple, Dict, GetAttr, GetItem, Slice, Call, Filter, Test, Not, Neg, Pos,
    Binary, Compare, Cond
  };
  Type type;
  Pos pos;
  Value literal;                       // Literal
  std::string name;                    // Name, GetAttr attribute, Filter/Test name, Binary/op name
  std::vector<ExprPtr> items;          // List/Tuple items; Dict keys/values interleaved
  ExprPtr a, b, c;                     // operands: object/cond, index/then, else; Slice start/stop/step in b,c,d
  ExprPtr d;
  CallArgs args;                       // Call, Filter, Test
  std::vector<std::pair<std::string, ExprPtr>> ops;  // Compare: operator and right operand
  bool negated = false;                // Test
  Expr(Type t, Pos p) : type(t), pos(p) {}
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Assignment target of for / set: a name, a namespace attribute, or a tuple of names.
struct Target {
  std::vector<std::string> names;  // one name, or several for unpacking
  bool unpack = false;
  std::string ns_attr;             // set ns.attr = ...: names[0] is the namespace
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;
};

struct Stmt {
  enum class Type { Text, Print, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope };
  Type type;
  Pos pos;
  std::string text;                                  // Text; Macro name
  ExprPtr expr;                                      // Print, Set value, For iterable, CallBlock call
  ExprPtr cond;                                      // For filter
  std::vector<std::pair<ExprPtr, Body>> branches;    // If: condition + body (else has null cond)
  Target target;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;                    // Macro, CallBlock caller params
  std::vector<ExprPtr> filters;                      // SetBlock / FilterBlock filter chain (input null)
  std::vector<std::pair<Target, ExprPtr>> assigns;   // With
  bool recursive = false;
  Stmt(Type t, Pos p) : type(t), pos(p) {}
};

struct Program {
  Body body;
};

// Throws kexa::Error "template syntax error at line L, column C: ..." on bad input.
std::unique_ptr<Program> parse(std::string_view source);

}  // namespace kexa::jinja
