//! The spec file format (src/protocol/spec/README.md): a message's header lines, then its
//! request and response as indented field lines.

use std::collections::BTreeMap;
use std::fmt;

/// A version range; `hi == i16::MAX` for `N+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub lo: i16,
    pub hi: i16,
}

impl Versions {
    pub fn contains(&self, v: i16) -> bool {
        self.lo <= v && v <= self.hi
    }
    pub fn parse(s: &str) -> Result<Versions, String> {
        if let Some(lo) = s.strip_suffix('+') {
            let lo = lo.parse().map_err(|_| format!("bad version range {s:?}"))?;
            return Ok(Versions { lo, hi: i16::MAX });
        }
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("bad version range {s:?} (want N+ or N-M)"))?;
        let lo = lo.parse().map_err(|_| format!("bad version range {s:?}"))?;
        let hi = hi.parse().map_err(|_| format!("bad version range {s:?}"))?;
        if lo > hi {
            return Err(format!("empty version range {s:?}"));
        }
        Ok(Versions { lo, hi })
    }
}

impl fmt::Display for Versions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hi == i16::MAX {
            write!(f, "v{}+", self.lo)
        } else if self.lo == self.hi {
            write!(f, "v{}", self.lo)
        } else {
            write!(f, "v{}–{}", self.lo, self.hi)
        }
    }
}

/// A field's wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    Uuid,
    String,
    Bytes,
    Records,
    Struct(String),
    Array(Box<Ty>),
}

impl Ty {
    fn parse(s: &str) -> Ty {
        if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            return Ty::Array(Box::new(Ty::parse(inner)));
        }
        match s {
            "bool" => Ty::Bool,
            "i8" => Ty::I8,
            "i16" => Ty::I16,
            "i32" => Ty::I32,
            "i64" => Ty::I64,
            "uuid" => Ty::Uuid,
            "string" => Ty::String,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            other => Ty::Struct(other.to_owned()),
        }
    }
    /// The struct this type names, directly or as an array's element.
    pub fn struct_name(&self) -> Option<&str> {
        match self {
            Ty::Struct(s) => Some(s),
            Ty::Array(t) => t.struct_name(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub ty: Ty,
    pub versions: Versions,
    pub nullable: Option<Versions>,
    pub default: Option<String>,
    pub tag: Option<u32>,
    /// Never shown by `Debug` (credentials, tokens).
    pub secret: bool,
    pub doc: String,
}

#[derive(Debug, Clone)]
pub struct Struct {
    pub name: String,
    pub doc: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone)]
pub struct Message {
    /// The file's stem (`metadata`), the Rust module's name.
    pub module: String,
    pub name: String,
    pub key: i16,
    pub versions: Versions,
    /// First flexible version; `None` for `flexible none`.
    pub flexible: Option<i16>,
    pub gate: Option<String>,
    pub doc: String,
    /// Comment lines after the header (`# ...`), kept as the module's notes.
    pub notes: Vec<String>,
    pub request: String,
    pub response: String,
    /// Every struct, by name, in order of definition.
    pub structs: BTreeMap<String, Struct>,
    pub order: Vec<String>,
}

impl Message {
    pub fn is_flexible(&self, v: i16) -> bool {
        self.flexible.is_some_and(|f| v >= f)
    }
    pub fn all_versions(&self) -> impl Iterator<Item = i16> + '_ {
        self.versions.lo..=self.versions.hi
    }
    pub fn get(&self, name: &str) -> &Struct {
        &self.structs[name]
    }
}

/// Splits a line into words, keeping `"quoted strings"` whole (quotes removed, `\"` kept).
fn words(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut w = String::new();
        let mut quoted = false;
        // A word may be `key="quoted value"`.
        while let Some(&c) = chars.peek() {
            if c == '"' {
                quoted = true;
                chars.next();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(n) => w.push(n),
                            None => return Err("unterminated string".into()),
                        },
                        Some('"') => break,
                        Some(ch) => w.push(ch),
                        None => return Err("unterminated string".into()),
                    }
                }
                continue;
            }
            if c.is_whitespace() {
                break;
            }
            w.push(c);
            chars.next();
        }
        out.push((w, quoted));
    }
    Ok(out)
}

pub fn parse(module: &str, text: &str) -> Result<Message, String> {
    let mut m = Message {
        module: module.to_owned(),
        name: String::new(),
        key: -1,
        versions: Versions { lo: 0, hi: 0 },
        flexible: None,
        gate: None,
        doc: String::new(),
        notes: Vec::new(),
        request: String::new(),
        response: String::new(),
        structs: BTreeMap::new(),
        order: Vec::new(),
    };
    let mut saw_flexible = false;
    // (indent level, struct name) of the structs being filled.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (no, raw) in text.lines().enumerate() {
        let at = |e: String| format!("{module}.spec:{}: {e}", no + 1);
        let trimmed = raw.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(note) = trimmed.strip_prefix('#') {
            if stack.is_empty() && m.request.is_empty() && !m.name.is_empty() {
                m.notes
                    .push(note.strip_prefix(' ').unwrap_or(note).to_owned());
            }
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if indent % 2 != 0 {
            return Err(at("indentation must be a multiple of two spaces".into()));
        }
        let level = indent / 2;
        let w = words(trimmed).map_err(at)?;
        let word = |i: usize| w.get(i).map(|x| x.0.as_str()).unwrap_or("");
        if level == 0 {
            stack.clear();
            match word(0) {
                "message" => m.name = word(1).to_owned(),
                "key" => m.key = word(1).parse().map_err(|_| at("bad key".into()))?,
                "versions" => m.versions = Versions::parse(word(1)).map_err(at)?,
                "flexible" => {
                    saw_flexible = true;
                    m.flexible = match word(1) {
                        "none" => None,
                        v => Some(Versions::parse(v).map_err(at)?.lo),
                    }
                }
                "gate" => m.gate = Some(word(1).to_owned()),
                "doc" => m.doc = word(1).to_owned(),
                kind @ ("request" | "response") => {
                    let name = word(1).to_owned();
                    if name.is_empty() {
                        return Err(at(format!("{kind} needs a struct name")));
                    }
                    if kind == "request" {
                        m.request = name.clone();
                    } else {
                        m.response = name.clone();
                    }
                    add_struct(&mut m, &name, word(2)).map_err(at)?;
                    stack.push((0, name));
                }
                other => return Err(at(format!("unknown header line {other:?}"))),
            }
            continue;
        }
        // A field line: its parent is the innermost struct at level - 1.
        while stack.last().is_some_and(|(l, _)| *l >= level) {
            stack.pop();
        }
        let Some((plevel, parent)) = stack.last().cloned() else {
            return Err(at("a field outside a request or response".into()));
        };
        if plevel + 1 != level {
            return Err(at("a field indented too deep".into()));
        }
        if w.len() < 3 {
            return Err(at("a field needs a name, a type and versions".into()));
        }
        let mut field = Field {
            name: w[0].0.clone(),
            ty: Ty::parse(&w[1].0),
            versions: Versions::parse(&w[2].0).map_err(at)?,
            nullable: None,
            default: None,
            tag: None,
            secret: false,
            doc: String::new(),
        };
        let mut docs = Vec::new();
        for (word, quoted) in &w[3..] {
            if let Some(v) = word.strip_prefix("nullable=") {
                field.nullable = Some(Versions::parse(v).map_err(at)?);
            } else if let Some(v) = word.strip_prefix("default=") {
                field.default = Some(if *quoted {
                    format!("\"{v}\"")
                } else {
                    v.to_owned()
                });
            } else if let Some(v) = word.strip_prefix("tag=") {
                field.tag = Some(v.parse().map_err(|_| at("bad tag".into()))?);
            } else if word == "secret" && !*quoted {
                field.secret = true;
            } else if *quoted {
                docs.push(word.clone());
            } else {
                return Err(at(format!("unknown option {word:?}")));
            }
        }
        if docs.is_empty() {
            return Err(at(format!("field {} has no doc", field.name)));
        }
        field.doc = docs[0].clone();
        if field.nullable.is_some()
            && !matches!(
                &field.ty,
                Ty::String | Ty::Bytes | Ty::Records | Ty::Array(_) | Ty::Struct(_)
            )
        {
            return Err(at(format!("{} cannot be nullable", field.name)));
        }
        if field.tag.is_some() && m.flexible.is_none() {
            return Err(at(
                "a tagged field in a message with no flexible versions".into()
            ));
        }
        if let Some(s) = field.ty.struct_name() {
            let s = s.to_owned();
            if !m.structs.contains_key(&s) {
                add_struct(&mut m, &s, docs.get(1).map(String::as_str).unwrap_or(""))
                    .map_err(at)?;
                stack.push((level, s));
            } else if docs.len() > 1 {
                return Err(at(format!("struct {s} is already defined")));
            }
        }
        let parent = m.structs.get_mut(&parent).expect("parent struct");
        if parent.fields.iter().any(|f| f.name == field.name) {
            return Err(at(format!("field {} twice", field.name)));
        }
        parent.fields.push(field);
    }
    if m.name.is_empty() || m.key < 0 || m.request.is_empty() || m.response.is_empty() {
        return Err(format!(
            "{module}.spec: needs message, key, versions, request and response"
        ));
    }
    if !saw_flexible {
        return Err(format!(
            "{module}.spec: needs `flexible N+` or `flexible none`"
        ));
    }
    for s in m.structs.values() {
        for f in &s.fields {
            if let Some(n) = f.ty.struct_name() {
                if !m.structs.contains_key(n) {
                    return Err(format!("{module}.spec: struct {n} is not defined"));
                }
            }
        }
    }
    Ok(m)
}

fn add_struct(m: &mut Message, name: &str, doc: &str) -> Result<(), String> {
    if m.structs.contains_key(name) {
        return Err(format!("struct {name} is defined twice"));
    }
    m.structs.insert(
        name.to_owned(),
        Struct {
            name: name.to_owned(),
            doc: doc.to_owned(),
            fields: Vec::new(),
        },
    );
    m.order.push(name.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"message Sample
key 99
versions 0-4
flexible 2+
doc "a sample."
# a note kept for the module

request SampleRequest "The request."
  name string 0+ nullable=1+ "A name."
  count i32 0+ default=-1 "A count."
  secret_bytes bytes 3+ secret "A token."
  items [Item] 1+ "The items." "One item."
    id i64 1+ "Its id."
    labels [string] 2+ "Labels."
  hint string 2+ tag=0 default="none" "A tagged hint."

response SampleResponse "The response."
  error_code i16 0+ "Error code."
  again [Item] 1+ "The items again."
"#;

    #[test]
    fn a_spec_gives_its_message_structs_and_field_options() {
        let m = parse("sample", GOOD).unwrap();
        assert_eq!((m.name.as_str(), m.key), ("Sample", 99));
        assert_eq!(m.versions, Versions { lo: 0, hi: 4 });
        assert_eq!(m.flexible, Some(2));
        assert!(!m.is_flexible(1) && m.is_flexible(2) && m.is_flexible(4));
        assert_eq!(m.notes, vec!["a note kept for the module".to_string()]);
        assert_eq!(m.order, ["SampleRequest", "Item", "SampleResponse"]);
        let req = m.get("SampleRequest");
        let names: Vec<&str> = req.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["name", "count", "secret_bytes", "items", "hint"]);
        assert_eq!(
            req.fields[0].nullable,
            Some(Versions {
                lo: 1,
                hi: i16::MAX
            })
        );
        assert_eq!(req.fields[1].default.as_deref(), Some("-1"));
        assert!(req.fields[2].secret && !req.fields[1].secret);
        assert_eq!(
            req.fields[3].ty,
            Ty::Array(Box::new(Ty::Struct("Item".into())))
        );
        assert_eq!(req.fields[4].tag, Some(0));
        // A quoted default is kept as a Rust string literal.
        assert_eq!(req.fields[4].default.as_deref(), Some("\"none\""));
        // Nested fields belong to the nested struct, which takes its doc from the second
        // quoted string; the response reuses it by name.
        let item = m.get("Item");
        assert_eq!(item.doc, "One item.");
        assert_eq!(item.fields.len(), 2);
        assert_eq!(
            item.fields[1].ty,
            Ty::Array(Box::new(Ty::String)),
            "labels is an array of strings"
        );
        assert_eq!(
            m.get("SampleResponse").fields[1].ty.struct_name(),
            Some("Item")
        );
    }

    #[test]
    fn version_ranges() {
        assert_eq!(
            Versions::parse("3+").unwrap(),
            Versions {
                lo: 3,
                hi: i16::MAX
            }
        );
        assert_eq!(Versions::parse("0-11").unwrap(), Versions { lo: 0, hi: 11 });
        for bad in ["", "3", "5-2", "a-b", "x+", "1-"] {
            assert!(Versions::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Versions {
                lo: 2,
                hi: i16::MAX
            }
            .to_string(),
            "v2+"
        );
        assert_eq!(Versions { lo: 2, hi: 2 }.to_string(), "v2");
    }

    /// Each broken spec is refused with a message naming the file, and the line where one
    /// applies.
    #[test]
    fn broken_specs_are_refused_with_the_line() {
        let head = "message M\nkey 1\nversions 0-3\nflexible 2+\n";
        let cases: &[(&str, &str)] = &[
            ("request R \"r\"\n   odd i32 0+ \"x\"\n", "multiple of two"),
            ("request R \"r\"\n  a i32 0+\n", "has no doc"),
            (
                "request R \"r\"\n  a i32\n",
                "needs a name, a type and versions",
            ),
            (
                "request R \"r\"\n  a i32 0+ frob=1 \"x\"\n",
                "unknown option",
            ),
            (
                "request R \"r\"\n  a i32 0+ nullable=1+ \"x\"\n",
                "cannot be nullable",
            ),
            (
                "request R \"r\"\n  a i32 0+ \"x\"\n  a i32 1+ \"y\"\n",
                "field a twice",
            ),
            (
                "request R \"r\"\n    deep i32 0+ \"x\"\n",
                "indented too deep",
            ),
            (
                "request R \"r\"\n  s [S] 0+ \"x\"\nresponse P \"p\"\n  s [S] 0+ \"x\" \"again\"\n",
                "already defined",
            ),
            (
                "request R \"r\"\n  a string 0+ \"unterminated\n",
                "unterminated string",
            ),
            (
                "request R \"r\"\nresponse P \"p\"\nbogus 1\n",
                "unknown header line",
            ),
            ("  a i32 0+ \"x\"\n", "outside a request or response"),
            (
                "request R \"r\"\n",
                "needs message, key, versions, request and response",
            ),
        ];
        for (body, says) in cases {
            let e = parse("m", &format!("{head}{body}")).unwrap_err();
            assert!(e.starts_with("m.spec"), "{e}");
            assert!(e.contains(says), "{body:?}: {e}");
        }
        // A tagged field needs flexible versions; `flexible` must be said.
        let e = parse(
            "m",
            "message M\nkey 1\nversions 0-1\nflexible none\nrequest R \"r\"\n  a i32 0+ tag=0 \"x\"\nresponse P \"p\"\n",
        )
        .unwrap_err();
        assert!(e.contains("no flexible versions"), "{e}");
        let e = parse(
            "m",
            "message M\nkey 1\nversions 0-1\nrequest R \"r\"\nresponse P \"p\"\n",
        )
        .unwrap_err();
        assert!(e.contains("flexible"), "{e}");
    }
}
