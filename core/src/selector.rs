//! RocketMQ's SQL92 message selector (`expressionType = SQL92`, `enablePropertyFilter`): the
//! language of Java's `SelectorParser.jj` (ActiveMQ's JMS selector without LIKE, arithmetic,
//! hex and octal literals), parsed here by a small recursive-descent parser and evaluated
//! against a message's properties with SQL's three-valued logic.
//!
//! Grammar (keywords case-insensitive; `--` and `/* */` comments skipped):
//!
//! ```text
//! selector   := or
//! or         := and (OR and)*
//! and        := equality (AND equality)*
//! equality   := comparison ( '=' comparison | '<>' comparison | IS NULL | IS NOT NULL )*
//! comparison := unary ( ('>' | '>=' | '<' | '<=') unary
//!                     | [NOT] CONTAINS string | [NOT] STARTSWITH string | [NOT] ENDSWITH string
//!                     | [NOT] BETWEEN unary AND unary
//!                     | [NOT] IN '(' string (',' string)* ')' )*
//! unary      := '+' unary | '-' unary | NOT unary | primary
//! primary    := literal | identifier | '(' or ')'
//! literal    := 'string' ('' escapes a quote) | integer [l|L] | float | TRUE | FALSE | NULL
//! identifier := [a-zA-Z_$][a-zA-Z0-9_$]*
//! ```
//!
//! Semantics, as Java evaluates them (its comparisons convert strings): a property is a
//! string, or absent (NULL). Compared with a number it is read as that number (integer or
//! floating point as the other side is); two strings compared with `<`, `>`, `<=`, `>=` are
//! both read as floating point; a string that does not read as a number makes the comparison
//! fail, so the message does not match. `=` / `<>` with a string compare text. A comparison
//! with NULL is UNKNOWN; `AND`, `OR` and `NOT` follow three-valued logic; a message matches
//! only when the whole selector is TRUE. As in Java, constants are checked at parse time:
//! `<`-style comparisons take numbers, `=` does not take NULL, `BETWEEN` bounds must be
//! ordered, `IN` lists strings, and the selector must be boolean.

use std::fmt;
use std::sync::Arc;

use ferromq_net::codes::response_code;
use ferromq_store::record::property_pairs;
use ferromq_store::{PropertyFilter, TagFilter};

use crate::error::BrokerError;

/// `ExpressionType.SQL92`.
pub const EXPRESSION_SQL92: &str = "SQL92";

/// Longest selector accepted, in bytes (a bound on parse work and memory per subscription).
pub const MAX_SELECTOR_BYTES: usize = 16 * 1024;
/// Most tokens accepted: a long AND / OR chain nests as deep as it is long, and evaluation
/// recurses through it on a shard's stack.
const MAX_TOKENS: usize = 2000;
/// Deepest nesting accepted (parentheses and NOTs), a bound on the parser's stack.
const MAX_DEPTH: usize = 64;

/// A compiled selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    root: Expr,
    text: String,
}

/// Why a selector does not compile (SUBSCRIPTION_PARSE_FAILED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SQL92 selector at byte {at}: {reason}")]
pub struct SelectorError {
    pub at: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Const(Value),
    Prop(String),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, CmpOp, Box<Expr>),
    IsNull(Box<Expr>),
    In(Box<Expr>, Vec<String>),
    Text(Box<Expr>, TextOp, String),
    /// A property used as a boolean: TRUE only if it is a boolean TRUE, which a string never is.
    BoolCast(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.len() > MAX_SELECTOR_BYTES {
            return Err(SelectorError { at: 0, reason: format!("longer than {MAX_SELECTOR_BYTES} bytes") });
        }
        let tokens = tokenize(text)?;
        if tokens.len() > MAX_TOKENS {
            return Err(SelectorError { at: 0, reason: format!("more than {MAX_TOKENS} tokens") });
        }
        let mut parser = Parser { tokens, pos: 0, depth: 0, end: text.len() };
        let expr = parser.or()?;
        if let Some((at, token)) = parser.tokens.get(parser.pos) {
            return Err(SelectorError { at: *at, reason: format!("unexpected {token}") });
        }
        let root = as_boolean(expr, 0)?;
        Ok(Selector { root, text: text.to_owned() })
    }

    /// The selector as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a message with these properties matches (the selector is TRUE for it).
    pub fn matches<'a>(&self, property: impl Fn(&str) -> Option<&'a str>) -> bool {
        eval(&self.root, &property) == Tri(Some(true))
    }
}

impl PropertyFilter for Selector {
    fn matches(&self, encoded_properties: &[u8]) -> bool {
        // A later duplicate of a property wins, as for every reader of the record.
        let pairs: Vec<(&str, &str)> = property_pairs(encoded_properties).collect();
        Selector::matches(self, |name| pairs.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v))
    }
}

/// The store filter of a subscription whose expression type is not TAG: its compiled SQL92
/// selector. Refused with SYSTEM_ERROR when property filtering is off (`enablePropertyFilter`,
/// as Java answers) or the type is unknown, and with SUBSCRIPTION_PARSE_FAILED when the
/// expression does not compile.
pub fn expression_filter(expression_type: &str, expression: &str, property_filter_enabled: bool) -> Result<TagFilter, BrokerError> {
    if !expression_type.eq_ignore_ascii_case(EXPRESSION_SQL92) {
        return Err(BrokerError::system(format!("unknown expression type {expression_type:?}: TAG and SQL92 are served")));
    }
    if !property_filter_enabled {
        return Err(BrokerError::system(
            "The broker does not support consumer to filter message by SQL92 (enablePropertyFilter=false)",
        ));
    }
    let selector = Selector::parse(expression)
        .map_err(|e| BrokerError::new(response_code::SUBSCRIPTION_PARSE_FAILED, format!("the consumer's subscription {expression:?} does not parse: {e}")))?;
    Ok(TagFilter::Properties(Arc::new(selector)))
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// ---- tokens ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Int(i64),
    Float(f64),
    Sym(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Str(s) => write!(f, "'{s}'"),
            Token::Int(i) => write!(f, "{i}"),
            Token::Float(x) => write!(f, "{x}"),
            Token::Sym(s) => write!(f, "{s:?}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, SelectorError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, reason: &str| SelectorError { at, reason: reason.to_owned() };
    while let Some(&c) = bytes.get(i) {
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while bytes.get(i).is_some_and(|b| *b != b'\n' && *b != b'\r') {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let close = text.get(i + 2..).and_then(|rest| rest.find("*/")).ok_or_else(|| err(i, "unterminated comment"))?;
                i += 2 + close + 2;
            }
            b'\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    let Some(rest) = text.get(i..) else { return Err(err(start, "unterminated string")) };
                    let Some(quote) = rest.find('\'') else { return Err(err(start, "unterminated string")) };
                    value.push_str(rest.get(..quote).unwrap_or(""));
                    i += quote + 1;
                    if bytes.get(i) == Some(&b'\'') {
                        value.push('\'');
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push((start, Token::Str(value)));
            }
            b'0'..=b'9' | b'.' => {
                while bytes.get(i).is_some_and(|b| b.is_ascii_digit() || *b == b'.') {
                    i += 1;
                }
                if bytes.get(i).is_some_and(|b| *b == b'e' || *b == b'E') {
                    i += 1;
                    if bytes.get(i).is_some_and(|b| *b == b'+' || *b == b'-') {
                        i += 1;
                    }
                    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                }
                let number = text.get(start..i).unwrap_or("");
                let long_suffix = bytes.get(i).is_some_and(|b| *b == b'l' || *b == b'L');
                if number.contains(['.', 'e', 'E']) {
                    let value: f64 = number.parse().map_err(|_| err(start, "malformed number"))?;
                    out.push((start, Token::Float(value)));
                } else {
                    if number.len() > 1 && number.starts_with('0') {
                        return Err(err(start, "octal literals are not supported"));
                    }
                    let value: i64 = number.parse().map_err(|_| err(start, "integer out of range"))?;
                    if long_suffix {
                        i += 1;
                    }
                    out.push((start, Token::Int(value)));
                }
                if bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'$') {
                    return Err(err(i, "a letter right after a number"));
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$') {
                    i += 1;
                }
                out.push((start, Token::Word(text.get(start..i).unwrap_or("").to_owned())));
            }
            _ => {
                let sym = ["<>", ">=", "<=", "=", ">", "<", "(", ")", ",", "+", "-"]
                    .into_iter()
                    .find(|s| text.get(i..).is_some_and(|rest| rest.starts_with(s)))
                    .ok_or_else(|| err(i, &format!("unexpected character {:?}", text.get(i..).and_then(|r| r.chars().next()).unwrap_or('?'))))?;
                i += sym.len();
                out.push((start, Token::Sym(sym)));
            }
        }
    }
    Ok(out)
}

// ---- parser ------------------------------------------------------------------------------

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    depth: usize,
    end: usize,
}

const KEYWORDS: [&str; 13] = ["NOT", "AND", "OR", "BETWEEN", "IN", "TRUE", "FALSE", "NULL", "IS", "CONTAINS", "STARTSWITH", "ENDSWITH", "LIKE"];

impl Parser {
    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn error<T>(&self, reason: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError { at: self.at(), reason: reason.into() })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn peek_keyword(&self, offset: usize, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos + offset), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(keyword))
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        if self.peek_keyword(0, keyword) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == symbol) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SelectorError> {
        if self.keyword(keyword) { Ok(()) } else { self.error(format!("expected {keyword}")) }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Parser) -> Result<T, SelectorError>) -> Result<T, SelectorError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(format!("nested deeper than {MAX_DEPTH}"));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            let at = self.at();
            let right = self.and()?;
            left = Expr::Or(Box::new(as_boolean(left, at)?), Box::new(as_boolean(right, at)?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.equality()?;
        while self.keyword("AND") {
            let at = self.at();
            let right = self.equality()?;
            left = Expr::And(Box::new(as_boolean(left, at)?), Box::new(as_boolean(right, at)?));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.comparison()?;
        loop {
            let at = self.at();
            if self.symbol("=") || self.symbol("<>") {
                let negate = matches!(self.tokens.get(self.pos - 1), Some((_, Token::Sym("<>"))));
                let right = self.comparison()?;
                for side in [&left, &right] {
                    if *side == Expr::Const(Value::Null) {
                        return Err(SelectorError { at, reason: "NULL cannot be compared with = or <>; use IS NULL".into() });
                    }
                }
                let equal = Expr::Compare(Box::new(left), CmpOp::Eq, Box::new(right));
                left = if negate { Expr::Not(Box::new(equal)) } else { equal };
            } else if self.peek_keyword(0, "IS") {
                self.pos += 1;
                let not = self.keyword("NOT");
                self.expect_keyword("NULL")?;
                let is_null = Expr::IsNull(Box::new(left));
                left = if not { Expr::Not(Box::new(is_null)) } else { is_null };
            } else {
                return Ok(left);
            }
        }
    }

    fn string_literal(&mut self) -> Result<String, SelectorError> {
        match self.peek().cloned() {
            Some(Token::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => self.error("expected a string literal"),
        }
    }

    fn comparison(&mut self) -> Result<Expr, SelectorError> {
        let mut left = self.unary()?;
        loop {
            let at = self.at();
            let op = [(">=", CmpOp::Ge), ("<=", CmpOp::Le), (">", CmpOp::Gt), ("<", CmpOp::Lt)].into_iter().find(|(s, _)| matches!(self.peek(), Some(Token::Sym(t)) if t == s));
            if let Some((_, op)) = op {
                self.pos += 1;
                let right = self.unary()?;
                check_ordered_operand(&left, at)?;
                check_ordered_operand(&right, at)?;
                left = Expr::Compare(Box::new(left), op, Box::new(right));
                continue;
            }
            let not = self.peek_keyword(0, "NOT")
                && ["CONTAINS", "STARTSWITH", "ENDSWITH", "BETWEEN", "IN"].iter().any(|k| self.peek_keyword(1, k));
            if not {
                self.pos += 1;
            }
            let text_op = [("CONTAINS", TextOp::Contains), ("STARTSWITH", TextOp::StartsWith), ("ENDSWITH", TextOp::EndsWith)]
                .into_iter()
                .find(|(k, _)| self.peek_keyword(0, k));
            let expr = if let Some((_, op)) = text_op {
                self.pos += 1;
                let pattern = self.string_literal()?;
                Expr::Text(Box::new(left), op, pattern)
            } else if self.keyword("BETWEEN") {
                let low = self.unary()?;
                self.expect_keyword("AND")?;
                let high = self.unary()?;
                for side in [&left, &low, &high] {
                    check_ordered_operand(side, at)?;
                }
                if let (Expr::Const(lo), Expr::Const(hi)) = (&low, &high)
                    && number_order(hi, lo).is_some_and(|o| o == std::cmp::Ordering::Less)
                {
                    return Err(SelectorError { at, reason: "BETWEEN's lower bound is above its upper bound".into() });
                }
                let left = Box::new(left);
                Expr::And(Box::new(Expr::Compare(left.clone(), CmpOp::Ge, Box::new(low))), Box::new(Expr::Compare(left, CmpOp::Le, Box::new(high))))
            } else if self.keyword("IN") {
                if !matches!(left, Expr::Prop(_)) {
                    return Err(SelectorError { at, reason: "IN needs a property on its left".into() });
                }
                if !self.symbol("(") {
                    return self.error("expected ( after IN");
                }
                let mut list = vec![self.string_literal()?];
                while self.symbol(",") {
                    list.push(self.string_literal()?);
                }
                if !self.symbol(")") {
                    return self.error("expected ) to close IN");
                }
                Expr::In(Box::new(left), list)
            } else if not {
                return self.error("expected CONTAINS, STARTSWITH, ENDSWITH, BETWEEN or IN after NOT");
            } else {
                return Ok(left);
            };
            left = if not { Expr::Not(Box::new(expr)) } else { expr };
        }
    }

    fn unary(&mut self) -> Result<Expr, SelectorError> {
        self.nested(|p| {
            if p.symbol("+") {
                return p.unary();
            }
            if p.symbol("-") {
                return Ok(match p.unary()? {
                    Expr::Const(Value::Int(i)) => Expr::Const(Value::Int(i.wrapping_neg())),
                    Expr::Const(Value::Float(x)) => Expr::Const(Value::Float(-x)),
                    other => Expr::Negate(Box::new(other)),
                });
            }
            if p.keyword("NOT") {
                let at = p.at();
                let operand = p.unary()?;
                return Ok(Expr::Not(Box::new(as_boolean(operand, at)?)));
            }
            p.primary()
        })
    }

    fn primary(&mut self) -> Result<Expr, SelectorError> {
        let Some(token) = self.peek().cloned() else { return self.error("unexpected end of the selector") };
        self.pos += 1;
        Ok(match token {
            Token::Str(s) => Expr::Const(Value::Str(s)),
            Token::Int(i) => Expr::Const(Value::Int(i)),
            Token::Float(x) => Expr::Const(Value::Float(x)),
            Token::Sym("(") => {
                let inner = self.nested(Parser::or)?;
                if !self.symbol(")") {
                    return self.error("expected )");
                }
                inner
            }
            Token::Word(w) if w.eq_ignore_ascii_case("TRUE") => Expr::Const(Value::Bool(true)),
            Token::Word(w) if w.eq_ignore_ascii_case("FALSE") => Expr::Const(Value::Bool(false)),
            Token::Word(w) if w.eq_ignore_ascii_case("NULL") => Expr::Const(Value::Null),
            Token::Word(w) if KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                self.pos -= 1;
                return self.error(format!("unexpected keyword {w}"));
            }
            Token::Word(w) => Expr::Prop(w),
            other => {
                self.pos -= 1;
                return self.error(format!("unexpected {other}"));
            }
        })
    }
}

/// Java's `asBooleanExpression`: boolean expressions pass, a property is cast, anything else
/// (a literal) cannot be a condition.
fn as_boolean(expr: Expr, at: usize) -> Result<Expr, SelectorError> {
    match expr {
        Expr::Prop(_) => Ok(Expr::BoolCast(Box::new(expr))),
        Expr::Const(Value::Bool(_)) | Expr::Not(_) | Expr::And(..) | Expr::Or(..) | Expr::Compare(..) | Expr::IsNull(_) | Expr::In(..) | Expr::Text(..) | Expr::BoolCast(_) => Ok(expr),
        other => Err(SelectorError { at, reason: format!("{other:?} is not a condition") }),
    }
}

/// Java's `checkLessThanOperand`: constants of `<`-style comparisons must be numbers, and no
/// operand may be a condition.
fn check_ordered_operand(expr: &Expr, at: usize) -> Result<(), SelectorError> {
    match expr {
        Expr::Const(Value::Int(_) | Value::Float(_)) | Expr::Prop(_) | Expr::Negate(_) => Ok(()),
        Expr::Const(v) => Err(SelectorError { at, reason: format!("{v:?} cannot be compared with <, >, <=, >= or BETWEEN") }),
        _ => Err(SelectorError { at, reason: "a condition cannot be compared with <, >, <=, >= or BETWEEN".into() }),
    }
}

// ---- evaluation --------------------------------------------------------------------------

/// TRUE, FALSE or UNKNOWN (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tri(Option<bool>);

fn value<'a>(expr: &Expr, property: &dyn Fn(&str) -> Option<&'a str>) -> Value {
    match expr {
        Expr::Const(v) => v.clone(),
        Expr::Prop(name) => property(name).map_or(Value::Null, |s| Value::Str(s.to_owned())),
        Expr::Negate(inner) => match value(inner, property) {
            Value::Int(i) => Value::Int(i.wrapping_neg()),
            Value::Float(x) => Value::Float(-x),
            Value::Str(s) => match read_number(&s, false) {
                Some(Value::Int(i)) => Value::Int(i.wrapping_neg()),
                Some(Value::Float(x)) => Value::Float(-x),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
        other => match eval(other, property).0 {
            Some(b) => Value::Bool(b),
            None => Value::Null,
        },
    }
}

/// A string read as a number, integer or floating point as `float` asks.
fn read_number(s: &str, float: bool) -> Option<Value> {
    let s = s.trim();
    if float { s.parse::<f64>().ok().map(Value::Float) } else { s.parse::<i64>().ok().map(Value::Int) }
}

/// The order of two numbers (integers widened to floating point against floats).
fn number_order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        _ => None,
    }
}

/// Java's `__compare` with string conversion: `None` when the two cannot be compared.
fn order(a: &Value, b: &Value, ordered_op: bool) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) if ordered_op => number_order(&read_number(x, true)?, &read_number(y, true)?),
        (Value::Str(x), Value::Str(y)) => Some(x.as_str().cmp(y.as_str())),
        (Value::Str(s), n @ (Value::Int(_) | Value::Float(_))) => number_order(&read_number(s, matches!(n, Value::Float(_)))?, n),
        (n @ (Value::Int(_) | Value::Float(_)), Value::Str(s)) => number_order(n, &read_number(s, matches!(n, Value::Float(_)))?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Str(s), Value::Bool(b)) => Some(s.eq_ignore_ascii_case("true").cmp(b)),
        (Value::Bool(b), Value::Str(s)) => Some(b.cmp(&s.eq_ignore_ascii_case("true"))),
        _ => number_order(a, b),
    }
}

fn eval<'a>(expr: &Expr, property: &dyn Fn(&str) -> Option<&'a str>) -> Tri {
    match expr {
        Expr::Const(Value::Bool(b)) => Tri(Some(*b)),
        Expr::Const(_) | Expr::Prop(_) | Expr::Negate(_) => Tri(None),
        Expr::BoolCast(inner) => match value(inner, property) {
            Value::Null => Tri(None),
            Value::Bool(b) => Tri(Some(b)),
            _ => Tri(Some(false)),
        },
        Expr::Not(inner) => Tri(eval(inner, property).0.map(|b| !b)),
        Expr::And(l, r) => match eval(l, property).0 {
            Some(false) => Tri(Some(false)),
            left => match (left, eval(r, property).0) {
                (_, Some(false)) => Tri(Some(false)),
                (Some(true), Some(true)) => Tri(Some(true)),
                _ => Tri(None),
            },
        },
        Expr::Or(l, r) => match eval(l, property).0 {
            Some(true) => Tri(Some(true)),
            left => match (left, eval(r, property).0) {
                (_, Some(true)) => Tri(Some(true)),
                (Some(false), Some(false)) => Tri(Some(false)),
                _ => Tri(None),
            },
        },
        Expr::IsNull(inner) => Tri(Some(value(inner, property) == Value::Null)),
        Expr::Compare(l, op, r) => {
            let (a, b) = (value(l, property), value(r, property));
            if a == Value::Null || b == Value::Null {
                return Tri(None);
            }
            let ordering = order(&a, &b, *op != CmpOp::Eq);
            Tri(Some(match (op, ordering) {
                (_, None) => false,
                (CmpOp::Eq, Some(o)) => o.is_eq(),
                (CmpOp::Gt, Some(o)) => o.is_gt(),
                (CmpOp::Ge, Some(o)) => o.is_ge(),
                (CmpOp::Lt, Some(o)) => o.is_lt(),
                (CmpOp::Le, Some(o)) => o.is_le(),
            }))
        }
        Expr::In(inner, list) => match value(inner, property) {
            Value::Null => Tri(None),
            Value::Str(s) => Tri(Some(list.contains(&s))),
            _ => Tri(Some(false)),
        },
        Expr::Text(inner, op, pattern) => match value(inner, property) {
            Value::Null => Tri(None),
            Value::Str(s) => Tri(Some(match op {
                TextOp::Contains => s.contains(pattern.as_str()),
                TextOp::StartsWith => s.starts_with(pattern.as_str()),
                TextOp::EndsWith => s.ends_with(pattern.as_str()),
            })),
            _ => Tri(Some(false)),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn matches(selector: &str, props: &[(&str, &str)]) -> bool {
        let s = Selector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        s.matches(|name| props.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
    }

    #[test]
    fn comparisons_read_properties_as_numbers() {
        assert!(matches("a > 5", &[("a", "10")]));
        assert!(!matches("a > 5", &[("a", "5")]));
        assert!(matches("a >= 5", &[("a", "5")]));
        assert!(matches("a < 5.5", &[("a", "5.25")]));
        assert!(matches("a = 5", &[("a", "5")]));
        assert!(!matches("a > 5", &[("a", "ten")]), "not a number: no match");
        assert!(!matches("a > 5", &[("a", "5.5")]), "Java reads it as an integer against an integer literal");
        assert!(matches("a > 5.0", &[("a", "5.5")]));
        assert!(matches("a <> 5", &[("a", "6")]));
        assert!(matches("a = -3", &[("a", "-3")]));
        assert!(matches("a > b", &[("a", "10"), ("b", "9")]), "two strings with > are read as numbers");
        assert!(matches("a = b", &[("a", "x"), ("b", "x")]));
    }

    #[test]
    fn strings_in_between_and_text_tests() {
        let sql = "a > 5 AND b IN ('x','y')";
        assert!(matches(sql, &[("a", "6"), ("b", "x")]));
        assert!(!matches(sql, &[("a", "6"), ("b", "z")]));
        assert!(!matches(sql, &[("a", "4"), ("b", "y")]));
        assert!(!matches(sql, &[("b", "y")]));
        assert!(matches("b NOT IN ('x')", &[("b", "y")]));
        assert!(matches("a BETWEEN 1 AND 3", &[("a", "3")]));
        assert!(!matches("a NOT BETWEEN 1 AND 3", &[("a", "2")]));
        assert!(matches("region = 'it''s'", &[("region", "it's")]));
        assert!(matches("TAGS = 'TagA' or TAGS = 'TagB'", &[("TAGS", "TagB")]));
        assert!(matches("s CONTAINS 'ell' AND s STARTSWITH 'he' AND s ENDSWITH 'lo' AND s NOT CONTAINS 'z'", &[("s", "hello")]));
        assert!(matches("flag = TRUE", &[("flag", "true")]));
        assert!(matches("(a > 1 OR b = 'x') AND NOT (c IS NULL)", &[("a", "2"), ("c", "")]));
        // As in Java's grammar, NOT binds tighter than IS: (NOT c) IS NULL.
        assert!(!matches("NOT c IS NULL", &[("c", "")]));
    }

    #[test]
    fn null_is_unknown_in_three_valued_logic() {
        assert!(!matches("a > 5", &[]));
        assert!(!matches("NOT (a > 5)", &[]), "NOT UNKNOWN is UNKNOWN");
        assert!(matches("a > 5 OR b = 'x'", &[("b", "x")]), "UNKNOWN OR TRUE is TRUE");
        assert!(!matches("a > 5 OR b = 'x'", &[("b", "y")]));
        assert!(!matches("a > 5 AND b = 'x'", &[("b", "x")]), "UNKNOWN AND TRUE is UNKNOWN");
        assert!(matches("NOT (a > 5 AND b = 'x')", &[("b", "y")]), "UNKNOWN AND FALSE is FALSE");
        assert!(matches("a IS NULL", &[]));
        assert!(matches("a IS NOT NULL", &[("a", "")]));
        assert!(!matches("b IN ('x')", &[]));
        assert!(!matches("b NOT IN ('x')", &[]));
        assert!(matches("TRUE", &[]));
        assert!(!matches("a", &[("a", "true")]), "a property is a string, never a boolean TRUE");
    }

    #[test]
    fn keywords_are_case_insensitive_and_comments_skipped() {
        assert!(matches("a between 1 and 3 -- trailing\n and b is not null /* c */", &[("a", "2"), ("b", "1")]));
        assert!(matches("a in ('x') Or a In ('y')", &[("a", "y")]));
        assert!(matches("a > 5L", &[("a", "6")]));
        assert!(matches("a > 1e0", &[("a", "2")]));
    }

    #[test]
    fn invalid_selectors_are_refused_with_a_position() {
        for bad in [
            "",
            "a >",
            "a > 'x'",
            "a = NULL",
            "a IN (1, 2)",
            "5",
            "'x'",
            "a BETWEEN 3 AND 1",
            "a LIKE 'x%'",
            "(a > 1",
            "a > 1)",
            "a > 1 AND",
            "a >> 1",
            "a = 'unterminated",
            "a > 012",
            "a.b = 'x'",
            "a + 1 > 2",
            "TRUE > 1",
            "a IS 5",
        ] {
            let e = Selector::parse(bad).expect_err(bad);
            assert!(!e.reason.is_empty(), "{bad}");
        }
        let deep = format!("{}a > 1{}", "(".repeat(200), ")".repeat(200));
        assert!(Selector::parse(&deep).is_err());
        assert!(Selector::parse(&"a > 1 OR ".repeat(10_000)).is_err());
    }
}
