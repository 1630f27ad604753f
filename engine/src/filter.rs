//! Milvus' boolean expression language: parsing, checking against a schema, evaluation.
//!
//! Grammar (keywords case-insensitive, `&&`/`||`/`!` accepted for `and`/`or`/`not`):
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := not (("and" | "&&") not)*
//! not     := ("not" | "!") not | primary
//! primary := "(" expr ")" | call | operand tail?
//! tail    := cmp operand | ["not"] "in" list | ["not"] "like" string | "is" ["not"] "null"
//! call    := ("array_contains" | "array_contains_all" | "array_contains_any") "(" operand "," (literal | list) ")"
//!          | "array_length" "(" operand ")" tail
//! operand := field ("[" (string | int) "]")* | literal
//! ```
//! Evaluation uses SQL's three-valued logic (a comparison with NULL is unknown, and a row
//! passes only when the whole expression is true), so Postgres can serve as the reference.

mod eval;
mod parse;

pub use eval::{Columns, evaluate};
pub use parse::parse;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Literal {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

/// One step into a JSON value or an array.
#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    /// `["key"]` into a JSON object.
    Key(String),
    /// `[3]` into an array (JSON or ARRAY).
    Index(i64),
}

/// A value an expression reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field, optionally followed by steps into it. Names not in the schema resolve to
    /// `$meta["name"]` when the collection has a dynamic field.
    Field {
        /// The field.
        name: String,
        /// Steps into JSON or ARRAY values.
        path: Vec<PathStep>,
    },
    /// `array_length(field)`.
    ArrayLength(String),
    /// A constant.
    Literal(Literal),
}

/// Which `array_contains` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contains {
    /// `array_contains(a, v)`.
    One,
    /// `array_contains_all(a, [..])`.
    All,
    /// `array_contains_any(a, [..])`.
    Any,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a op b`.
    Cmp(Operand, CmpOp, Operand),
    /// `a [not] in [..]`.
    In(Operand, Vec<Literal>, bool),
    /// `a [not] like "pattern"` (`%` any run, `_` one character).
    Like(Operand, String, bool),
    /// `a is [not] null`.
    IsNull(Operand, bool),
    /// `array_contains*(a, ..)`.
    ArrayContains(Operand, Contains, Vec<Literal>),
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// A bare `true` / `false` or a boolean field.
    Truth(Operand),
}

#[cfg(test)]
mod tests;
