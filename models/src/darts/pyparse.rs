//! A reader for the small subset of Python literals that genotype text uses: strings, integers,
//! lists, tuples and calls with positional or keyword arguments (`Genotype(normal=[...], ...)`,
//! `range(2, 6)`), optionally after an assignment (`DARTS_V2 = Genotype(...)`, as in the DARTS code's
//! `genotypes.py`). Whitespace, newlines, trailing commas and `#` comments are allowed anywhere
//! Python allows them. Errors name the character position and what was expected.

/// A parsed value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PyValue {
    Str(String),
    Int(i64),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Call { name: String, args: Vec<(Option<String>, PyValue)> },
}

impl PyValue {
    /// A short rendering of the value for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            PyValue::Str(s) => format!("'{s}'"),
            PyValue::Int(i) => i.to_string(),
            PyValue::List(v) => format!("a list of {}", v.len()),
            PyValue::Tuple(v) => format!("a tuple of {}", v.len()),
            PyValue::Call { name, .. } => format!("{name}(...)"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Int(i64),
    Str(String),
    Punct(char),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("'{s}'"),
            Token::Int(i) => i.to_string(),
            Token::Str(s) => format!("the string '{s}'"),
            Token::Punct(c) => format!("'{c}'"),
        }
    }
}

/// Tokens with their character positions (from 1).
fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k];
        let at = k + 1;
        if c.is_whitespace() {
            k += 1;
        } else if c == '#' {
            while k < chars.len() && chars[k] != '\n' {
                k += 1;
            }
        } else if "()[],=".contains(c) {
            out.push((at, Token::Punct(c)));
            k += 1;
        } else if c == '\'' || c == '"' {
            let end = chars[k + 1..].iter().position(|&d| d == c || d == '\n');
            match end.map(|e| k + 1 + e) {
                Some(e) if chars[e] == c => {
                    out.push((at, Token::Str(chars[k + 1..e].iter().collect())));
                    k = e + 1;
                }
                _ => return Err(format!("at character {at}: the string opened here is not closed")),
            }
        } else if c.is_ascii_digit() || (c == '-' && chars.get(k + 1).is_some_and(char::is_ascii_digit)) {
            let start = k;
            k += 1;
            while k < chars.len() && chars[k].is_ascii_digit() {
                k += 1;
            }
            let digits: String = chars[start..k].iter().collect();
            let value =
                digits.parse().map_err(|_| format!("at character {at}: integer {digits} is too large"))?;
            out.push((at, Token::Int(value)));
        } else if c.is_alphanumeric() || c == '_' {
            let start = k;
            while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_' || chars[k] == '.') {
                k += 1;
            }
            out.push((at, Token::Ident(chars[start..k].iter().collect())));
        } else {
            return Err(format!("at character {at}: unexpected '{c}'"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    /// Position just past the text, for errors at its end.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn here(&self) -> String {
        match self.tokens.get(self.next) {
            Some((at, t)) => format!("at character {at} ({})", t.describe()),
            None => format!("at the end (character {})", self.end),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("{}: expected '{c}' {what}", self.here()))
        }
    }

    fn value(&mut self) -> Result<PyValue, String> {
        let Some((_, token)) = self.tokens.get(self.next).cloned() else {
            return Err(format!("{}: expected a value", self.here()));
        };
        self.next += 1;
        match token {
            Token::Str(s) => Ok(PyValue::Str(s)),
            Token::Int(i) => Ok(PyValue::Int(i)),
            Token::Punct('[') => Ok(PyValue::List(self.items(']')?)),
            Token::Punct('(') => Ok(PyValue::Tuple(self.items(')')?)),
            Token::Ident(name) => {
                self.expect('(', &format!("after '{name}' (a call such as range(2, 6))"))?;
                Ok(PyValue::Call { name, args: self.args()? })
            }
            Token::Punct(_) => {
                self.next -= 1;
                Err(format!("{}: expected a value", self.here()))
            }
        }
    }

    /// Comma-separated values up to `close` (a trailing comma allowed).
    fn items(&mut self, close: char) -> Result<Vec<PyValue>, String> {
        let mut out = Vec::new();
        while !self.eat(close) {
            out.push(self.value()?);
            if !self.eat(',') {
                self.expect(close, "or ','")?;
                break;
            }
        }
        Ok(out)
    }

    /// Call arguments up to `)`: `value` or `name=value`.
    fn args(&mut self) -> Result<Vec<(Option<String>, PyValue)>, String> {
        let mut out = Vec::new();
        while !self.eat(')') {
            let keyword = match (self.peek(), self.tokens.get(self.next + 1).map(|(_, t)| t)) {
                (Some(Token::Ident(name)), Some(Token::Punct('='))) => {
                    let name = name.clone();
                    self.next += 2;
                    Some(name)
                }
                _ => None,
            };
            out.push((keyword, self.value()?));
            if !self.eat(',') {
                self.expect(')', "or ','")?;
                break;
            }
        }
        Ok(out)
    }
}

/// Parses one value, optionally preceded by `NAME =`; returns the name (if any) and the value.
pub(crate) fn parse(text: &str) -> Result<(Option<String>, PyValue), String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, next: 0, end: text.chars().count() + 1 };
    let name = match (p.tokens.first(), p.tokens.get(1)) {
        (Some((_, Token::Ident(n))), Some((_, Token::Punct('=')))) => {
            let n = n.clone();
            p.next = 2;
            Some(n)
        }
        _ => None,
    };
    let value = p.value()?;
    if p.next < p.tokens.len() {
        return Err(format!("{}: expected the end of the text", p.here()));
    }
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_calls_lists_tuples_and_assignments() {
        let (name, v) = parse("X = G(a=[('s', 0), (\"t\", -1),], b=range(2, 6)) # comment").unwrap();
        assert_eq!(name.as_deref(), Some("X"));
        let PyValue::Call { name, args } = v else { panic!() };
        assert_eq!(name, "G");
        assert_eq!(args[0].0.as_deref(), Some("a"));
        assert_eq!(
            args[0].1,
            PyValue::List(vec![
                PyValue::Tuple(vec![PyValue::Str("s".into()), PyValue::Int(0)]),
                PyValue::Tuple(vec![PyValue::Str("t".into()), PyValue::Int(-1)]),
            ])
        );
        assert_eq!(
            args[1].1,
            PyValue::Call {
                name: "range".into(),
                args: vec![(None, PyValue::Int(2)), (None, PyValue::Int(6))]
            }
        );
    }

    #[test]
    fn errors_name_the_position() {
        for (text, expected) in [
            ("G(a=[1, 2)", "at character 10 (')'): expected ']' or ','"),
            ("G(a='x)", "at character 5: the string opened here is not closed"),
            ("G(a=1) extra", "at character 8 ('extra'): expected the end of the text"),
            ("G(a=1", "at the end (character 6): expected ')' or ','"),
            ("G(a=1;)", "at character 6: unexpected ';'"),
            ("G(a=,)", "at character 5 (','): expected a value"),
        ] {
            assert_eq!(parse(text).unwrap_err(), expected, "{text}");
        }
    }
}
