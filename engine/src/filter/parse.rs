//! Tokenizer and recursive-descent parser. Every error carries the character position.

use super::{CmpOp, Contains, Expr, Literal, Operand, PathStep};
use crate::error::{EngineError, Result};
use crate::schema::{CollectionSchema, DYNAMIC_FIELD, FieldType};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Sym(&'static str),
    End,
}

struct Lexer<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
}

const SYMS: [&str; 16] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", "-", "+",
];

impl<'a> Lexer<'a> {
    fn run(src: &'a str) -> Result<Vec<(Tok, usize)>> {
        let mut lx = Lexer {
            src,
            toks: Vec::new(),
        };
        let chars: Vec<(usize, char)> = src.char_indices().collect();
        let pos_of = |i: usize| {
            src[..chars.get(i).map_or(src.len(), |c| c.0)]
                .chars()
                .count()
        };
        let mut i = 0;
        while i < chars.len() {
            let (at, c) = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let pos = pos_of(i);
            if c.is_ascii_alphabetic() || c == '_' || c == '$' {
                let start = at;
                while i < chars.len()
                    && (chars[i].1.is_ascii_alphanumeric()
                        || chars[i].1 == '_'
                        || chars[i].1 == '$')
                {
                    i += 1;
                }
                let end = chars.get(i).map_or(src.len(), |c| c.0);
                lx.toks.push((Tok::Ident(src[start..end].to_string()), pos));
            } else if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(|c| c.1.is_ascii_digit()))
            {
                let start = at;
                let mut float = false;
                while i < chars.len() {
                    let ch = chars[i].1;
                    if ch.is_ascii_digit() {
                        i += 1;
                    } else if ch == '.' || ch == 'e' || ch == 'E' {
                        float = true;
                        i += 1;
                        if (ch == 'e' || ch == 'E')
                            && chars.get(i).is_some_and(|c| c.1 == '-' || c.1 == '+')
                        {
                            i += 1;
                        }
                    } else {
                        break;
                    }
                }
                let text = &src[start..chars.get(i).map_or(src.len(), |c| c.0)];
                let tok = if float {
                    Tok::Float(
                        text.parse()
                            .map_err(|_| err(src, pos, format!("`{text}` is not a number")))?,
                    )
                } else {
                    Tok::Int(text.parse().map_err(|_| {
                        err(
                            src,
                            pos,
                            format!("`{text}` does not fit in a 64-bit integer"),
                        )
                    })?)
                };
                lx.toks.push((tok, pos));
            } else if c == '"' || c == '\'' {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(err(src, pos, "string is not closed".into())),
                        Some(&(_, ch)) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(&(_, '\\')) => {
                            let esc = chars
                                .get(i + 1)
                                .map(|c| c.1)
                                .ok_or_else(|| err(src, pos, "string is not closed".into()))?;
                            s.push(match esc {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                            i += 2;
                        }
                        Some(&(_, ch)) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                lx.toks.push((Tok::Str(s), pos));
            } else if let Some(sym) = SYMS.iter().find(|s| lx.src[at..].starts_with(**s)) {
                i += sym.chars().count();
                lx.toks.push((Tok::Sym(sym), pos));
            } else if c == '=' {
                return Err(err(src, pos, "use `==` to compare".into()));
            } else {
                return Err(err(src, pos, format!("unexpected character `{c}`")));
            }
        }
        lx.toks.push((Tok::End, src.chars().count()));
        Ok(lx.toks)
    }
}

fn err(src: &str, position: usize, reason: String) -> EngineError {
    EngineError::Filter {
        expr: src.to_string(),
        position,
        caret: format!("{}^", " ".repeat(position)),
        reason,
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    at: usize,
    schema: &'a CollectionSchema,
}

/// Parses `src` and checks it against `schema` (fields exist, types fit).
pub fn parse(src: &str, schema: &CollectionSchema) -> Result<Expr> {
    let toks = Lexer::run(src)?;
    let mut p = Parser {
        src,
        toks,
        at: 0,
        schema,
    };
    if matches!(p.peek(), Tok::End) {
        return Err(err(src, 0, "the filter is empty".into()));
    }
    let e = p.or()?;
    match p.peek() {
        Tok::End => Ok(e),
        t => Err(p.here(format!("unexpected {}", describe(t)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "end of filter".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.at.min(self.toks.len() - 1)].0
    }
    fn pos(&self) -> usize {
        self.toks[self.at.min(self.toks.len() - 1)].1
    }
    fn here(&self, reason: String) -> EngineError {
        err(self.src, self.pos(), reason)
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.at += 1;
        t
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(x) if *x == s)
    }
    fn expect_sym(&mut self, s: &str) -> Result<()> {
        if self.sym(s) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.here(format!("expected `{s}`, found {}", describe(self.peek()))))
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut e = self.and()?;
        while self.keyword("or") || self.sym("||") {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut e = self.not()?;
        while self.keyword("and") || self.sym("&&") {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr> {
        if self.keyword("not") || self.sym("!") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        if self.sym("(") {
            self.at += 1;
            let e = self.or()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        for (name, kind) in [
            ("array_contains", Contains::One),
            ("array_contains_all", Contains::All),
            ("array_contains_any", Contains::Any),
        ] {
            if self.keyword(name) {
                let pos = self.pos();
                self.at += 1;
                self.expect_sym("(")?;
                let operand = self.operand()?;
                self.check_array(&operand, pos)?;
                self.expect_sym(",")?;
                let values = if kind == Contains::One {
                    vec![self.literal()?]
                } else {
                    self.list()?
                };
                self.expect_sym(")")?;
                return Ok(Expr::ArrayContains(operand, kind, values));
            }
        }
        let start = self.pos();
        let left = if self.keyword("array_length") {
            self.at += 1;
            self.expect_sym("(")?;
            let operand = self.operand()?;
            self.check_array(&operand, start)?;
            self.expect_sym(")")?;
            let Operand::Field { name, .. } = operand else {
                return Err(err(self.src, start, "array_length takes a field".into()));
            };
            Operand::ArrayLength(name)
        } else {
            self.operand()?
        };
        if self.keyword("is") {
            self.at += 1;
            let negated = self.keyword("not");
            if negated {
                self.at += 1;
            }
            if !self.keyword("null") {
                return Err(self.here("expected `null` after `is`".into()));
            }
            self.at += 1;
            return Ok(Expr::IsNull(left, negated));
        }
        let negated = self.keyword("not");
        if negated {
            self.at += 1;
            if !(self.keyword("in") || self.keyword("like")) {
                return Err(self.here("expected `in` or `like` after `not`".into()));
            }
        }
        if self.keyword("in") {
            self.at += 1;
            let list = self.list()?;
            self.check_cmp(&left, list.first(), start)?;
            return Ok(Expr::In(left, list, negated));
        }
        if self.keyword("like") {
            self.at += 1;
            let pos = self.pos();
            let Tok::Str(pattern) = self.bump() else {
                return Err(err(self.src, pos, "like needs a string pattern".into()));
            };
            self.check_cmp(&left, Some(&Literal::Str(String::new())), start)?;
            return Ok(Expr::Like(left, pattern, negated));
        }
        let op = match self.peek() {
            Tok::Sym("==") => Some(CmpOp::Eq),
            Tok::Sym("!=") => Some(CmpOp::Ne),
            Tok::Sym("<") => Some(CmpOp::Lt),
            Tok::Sym("<=") => Some(CmpOp::Le),
            Tok::Sym(">") => Some(CmpOp::Gt),
            Tok::Sym(">=") => Some(CmpOp::Ge),
            _ => None,
        };
        let Some(op) = op else {
            // A bare boolean: `true`, `flag`, `attrs["on"]`.
            let ok = match &left {
                Operand::Literal(Literal::Bool(_)) => true,
                Operand::Field { name, path } => {
                    path.is_empty()
                        && self
                            .schema
                            .field(name)
                            .is_some_and(|f| f.data_type == FieldType::Bool)
                        || self.is_json(name)
                }
                _ => false,
            };
            if ok {
                return Ok(Expr::Truth(left));
            }
            return Err(self.here(format!(
                "expected a comparison, `in`, `like` or `is null`, found {}",
                describe(self.peek())
            )));
        };
        self.at += 1;
        let right = self.operand()?;
        match (&left, &right) {
            (Operand::Literal(_), Operand::Literal(_)) => {
                return Err(err(
                    self.src,
                    start,
                    "a comparison needs a field on one side".into(),
                ));
            }
            (_, Operand::Literal(l)) => self.check_cmp(&left, Some(l), start)?,
            (Operand::Literal(l), _) => self.check_cmp(&right, Some(l), start)?,
            _ => {}
        }
        Ok(Expr::Cmp(left, op, right))
    }

    fn list(&mut self) -> Result<Vec<Literal>> {
        self.expect_sym("[")?;
        let mut out = Vec::new();
        if !self.sym("]") {
            loop {
                out.push(self.literal()?);
                if self.sym(",") {
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        self.expect_sym("]")?;
        Ok(out)
    }

    fn literal(&mut self) -> Result<Literal> {
        let pos = self.pos();
        match self.operand()? {
            Operand::Literal(l) => Ok(l),
            _ => Err(err(self.src, pos, "expected a constant".into())),
        }
    }

    fn operand(&mut self) -> Result<Operand> {
        let pos = self.pos();
        let negative = self.sym("-");
        if negative || self.sym("+") {
            self.at += 1;
        }
        let t = self.bump();
        let lit = |l: Literal| Ok(Operand::Literal(l));
        match t {
            Tok::Int(i) => lit(Literal::Int(if negative { -i } else { i })),
            Tok::Float(f) => lit(Literal::Float(if negative { -f } else { f })),
            _ if negative => Err(err(self.src, pos, "`-` must precede a number".into())),
            Tok::Str(s) => lit(Literal::Str(s)),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => lit(Literal::Bool(true)),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => lit(Literal::Bool(false)),
            Tok::Ident(name) => {
                let mut path = Vec::new();
                while self.sym("[") {
                    self.at += 1;
                    let p = self.pos();
                    path.push(match self.bump() {
                        Tok::Str(k) => PathStep::Key(k),
                        Tok::Int(i) => PathStep::Index(i),
                        t => {
                            return Err(err(
                                self.src,
                                p,
                                format!(
                                    "expected a string key or an index, found {}",
                                    describe(&t)
                                ),
                            ));
                        }
                    });
                    self.expect_sym("]")?;
                }
                self.resolve(name, path, pos)
            }
            t => Err(err(
                self.src,
                pos,
                format!("expected a field or a constant, found {}", describe(&t)),
            )),
        }
    }

    /// A field of the schema, or a key of the dynamic field.
    fn resolve(&self, name: String, path: Vec<PathStep>, pos: usize) -> Result<Operand> {
        if let Some(f) = self.schema.field(&name) {
            if f.data_type.is_vector() {
                return Err(err(
                    self.src,
                    pos,
                    format!("`{name}` is a vector field; filters read scalar fields"),
                ));
            }
            if !path.is_empty() && !matches!(f.data_type, FieldType::Json | FieldType::Array) {
                return Err(err(
                    self.src,
                    pos,
                    format!(
                        "`{name}` is {}, not JSON or ARRAY; it cannot be indexed with []",
                        f.data_type
                    ),
                ));
            }
            return Ok(Operand::Field { name, path });
        }
        if self.schema.dynamic_field {
            let mut p = vec![PathStep::Key(name)];
            p.extend(path);
            return Ok(Operand::Field {
                name: DYNAMIC_FIELD.to_string(),
                path: p,
            });
        }
        let hint =
            crate::error::did_you_mean(&name, self.schema.fields.iter().map(|f| f.name.as_str()));
        Err(err(self.src, pos, format!("unknown field `{name}`{hint}")))
    }

    fn is_json(&self, name: &str) -> bool {
        self.schema
            .field(name)
            .is_some_and(|f| f.data_type == FieldType::Json)
    }

    fn check_array(&self, operand: &Operand, pos: usize) -> Result<()> {
        match operand {
            Operand::Field { name, path }
                if path.is_empty()
                    && self
                        .schema
                        .field(name)
                        .is_some_and(|f| f.data_type == FieldType::Array) =>
            {
                Ok(())
            }
            Operand::Field { name, .. } if self.is_json(name) => Ok(()),
            Operand::Field { name, .. } => Err(err(
                self.src,
                pos,
                format!("`{name}` is not an ARRAY or JSON field"),
            )),
            _ => Err(err(self.src, pos, "expected an ARRAY field".into())),
        }
    }

    /// A field compared with a literal must have a type the literal can match.
    fn check_cmp(&self, operand: &Operand, lit: Option<&Literal>, pos: usize) -> Result<()> {
        let (Operand::Field { name, path }, Some(lit)) = (operand, lit) else {
            return Ok(());
        };
        let Some(f) = self.schema.field(name) else {
            return Ok(());
        };
        let t = if f.data_type == FieldType::Array && !path.is_empty() {
            f.element_type.unwrap_or(FieldType::Varchar)
        } else {
            f.data_type
        };
        let fits = match t {
            FieldType::Json => true,
            FieldType::Array => false,
            FieldType::Bool => matches!(lit, Literal::Bool(_)),
            FieldType::Varchar => matches!(lit, Literal::Str(_)),
            t if t.is_numeric() => matches!(lit, Literal::Int(_) | Literal::Float(_)),
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            let what = match lit {
                Literal::Int(_) | Literal::Float(_) => "a number",
                Literal::Str(_) => "a string",
                Literal::Bool(_) => "a boolean",
            };
            Err(err(
                self.src,
                pos,
                format!("`{name}` is {t} and cannot be compared with {what}"),
            ))
        }
    }
}
