//! Writes a message's Rust module from its spec: the types, `Default`, encode and decode at
//! every version, the `Request`/`Response` impls and the round-trip tests; and the message
//! table (`messages/mod.rs`).

use std::fmt::Write as _;

use crate::spec::{Field, Message, Struct, Ty, Versions};

/// Where a condition on `version` holds, within the versions a field can appear at.
enum Cond {
    Always,
    Never,
    When(String),
}

/// The condition "`version` in `r`", for versions already known to lie in `within`.
fn cond(r: Versions, within: Versions) -> Cond {
    let lo = r.lo.max(within.lo);
    let hi = r.hi.min(within.hi);
    if lo > hi {
        return Cond::Never;
    }
    match (lo <= within.lo, hi >= within.hi) {
        (true, true) => Cond::Always,
        (false, true) => Cond::When(format!("version >= {lo}")),
        (true, false) => Cond::When(format!("version <= {hi}")),
        (false, false) if lo == hi => Cond::When(format!("version == {lo}")),
        (false, false) => Cond::When(format!("({lo}..={hi}).contains(&version)")),
    }
}

fn intersect(a: Versions, b: Versions) -> Versions {
    Versions {
        lo: a.lo.max(b.lo),
        hi: a.hi.min(b.hi),
    }
}

struct Gen<'a> {
    m: &'a Message,
    /// The versions at which each struct can appear (so a field is gated only where its
    /// versions are narrower than its struct's).
    reach: std::collections::BTreeMap<String, Versions>,
    /// Each struct's path of field names from its message (`responses.partition_responses.`),
    /// the prefix of the names decode errors give.
    paths: std::collections::BTreeMap<String, String>,
    /// The flexibility expression: `fl` or `false`.
    fl: &'static str,
}

/// Each struct's first path of field names from the request or response.
fn paths(m: &Message) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![
        (m.request.clone(), String::new()),
        (m.response.clone(), String::new()),
    ];
    while let Some((name, prefix)) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        for f in &m.get(&name).fields {
            if let Some(child) = f.ty.struct_name() {
                todo.push((child.to_owned(), format!("{prefix}{}.", f.name)));
            }
        }
        out.insert(name, prefix);
    }
    out
}

/// The hull of the versions at which each struct of `m` is reachable.
fn reach(m: &Message) -> std::collections::BTreeMap<String, Versions> {
    let mut r = std::collections::BTreeMap::new();
    let flex = Versions {
        lo: m.flexible.unwrap_or(i16::MAX),
        hi: i16::MAX,
    };
    fn visit(
        m: &Message,
        name: &str,
        within: Versions,
        flex: Versions,
        r: &mut std::collections::BTreeMap<String, Versions>,
    ) {
        if within.lo > within.hi {
            return;
        }
        let merged = match r.get(name) {
            Some(old) => Versions {
                lo: old.lo.min(within.lo),
                hi: old.hi.max(within.hi),
            },
            None => within,
        };
        if r.get(name) == Some(&merged) {
            return;
        }
        r.insert(name.to_owned(), merged);
        for f in &m.get(name).fields {
            if let Some(child) = f.ty.struct_name() {
                let mut w = intersect(f.versions, merged);
                if f.tag.is_some() {
                    w = intersect(w, flex);
                }
                visit(m, child, w, flex, r);
            }
        }
    }
    visit(m, &m.request, m.versions, flex, &mut r);
    visit(m, &m.response, m.versions, flex, &mut r);
    r
}

impl Gen<'_> {
    fn rust_type(&self, f: &Field) -> String {
        let base = self.base_type(&f.ty);
        if f.nullable.is_some() {
            format!("Option<{base}>")
        } else {
            base
        }
    }

    fn base_type(&self, t: &Ty) -> String {
        match t {
            Ty::Bool => "bool".into(),
            Ty::I8 => "i8".into(),
            Ty::I16 => "i16".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::Uuid => "Uuid".into(),
            Ty::String => "String".into(),
            Ty::Bytes | Ty::Records => "Bytes".into(),
            Ty::Struct(s) => s.clone(),
            Ty::Array(e) => format!("Vec<{}>", self.base_type(e)),
        }
    }

    /// The field's default value as an expression, and whether it is the type's own default.
    fn default_expr(&self, f: &Field) -> (String, bool) {
        let d = f.default.as_deref();
        if f.nullable.is_some() {
            return match d {
                None | Some("null") => ("None".into(), true),
                Some("[]") => ("Some(Vec::new())".into(), false),
                Some(s) if s.starts_with('"') => (format!("Some({s}.into())"), false),
                Some(s) => panic!("{}: bad default {s} for a nullable field", f.name),
            };
        }
        match (&f.ty, d) {
            (Ty::Bool, None | Some("false")) => ("false".into(), true),
            (Ty::Bool, Some("true")) => ("true".into(), false),
            (Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64, None) => ("0".into(), true),
            (Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64, Some(v)) => {
                let n: i64 = v
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: bad default {v}", f.name));
                let text = match (&f.ty, n) {
                    (Ty::I32, n) if n == i64::from(i32::MIN) => "i32::MIN".to_owned(),
                    (Ty::I32, n) if n == i64::from(i32::MAX) => "i32::MAX".to_owned(),
                    (Ty::I64, i64::MIN) => "i64::MIN".to_owned(),
                    _ => n.to_string(),
                };
                (text, n == 0)
            }
            (Ty::Uuid, None) => ("Uuid::ZERO".into(), true),
            (Ty::String, None) => ("String::new()".into(), true),
            (Ty::String, Some("\"\"")) => ("String::new()".into(), true),
            (Ty::String, Some(s)) if s.starts_with('"') => (format!("{s}.into()"), false),
            (Ty::Bytes | Ty::Records, None) => ("Bytes::new()".into(), true),
            (Ty::Array(_), None) => ("Vec::new()".into(), true),
            (Ty::Struct(s), None) => (format!("{s}::default()"), true),
            (t, Some(v)) => panic!("{}: no default {v} for {t:?}", f.name),
        }
    }

    /// Whether the field (recursively) holds only `Copy` data.
    fn is_copy(&self, s: &Struct) -> bool {
        s.fields.iter().all(|f| match &f.ty {
            Ty::Bool | Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 | Ty::Uuid => true,
            Ty::Struct(n) => f.nullable.is_none() && self.is_copy(self.m.get(n)),
            _ => false,
        })
    }

    fn strategy(&self, f: &Field) -> Option<String> {
        let t = "crate::protocol::testing";
        let base = match &f.ty {
            Ty::String => Some(format!("{t}::small_string()")),
            Ty::Bytes | Ty::Records => Some(format!("{t}::bytes()")),
            Ty::Uuid => Some(format!("{t}::uuid()")),
            Ty::Array(e) => {
                let elem = match &**e {
                    Ty::String => format!("{t}::small_string()"),
                    Ty::Uuid => format!("{t}::uuid()"),
                    other => format!("proptest::prelude::any::<{}>()", self.base_type(other)),
                };
                Some(format!("proptest::collection::vec({elem}, 0..3)"))
            }
            _ => None,
        };
        match (f.nullable.is_some(), base) {
            (false, b) => b,
            (true, Some(b)) => Some(format!("proptest::option::of({b})")),
            (true, None) => Some(format!(
                "proptest::option::of(proptest::prelude::any::<{}>())",
                self.base_type(&f.ty)
            )),
        }
    }

    /// The smallest number of bytes one `s` can take on the wire at any version of the given
    /// flexibility (so a count read off the wire can be checked before allocating).
    fn min_size(&self, s: &Struct, flexible: bool) -> usize {
        self.m
            .all_versions()
            .filter(|&v| self.m.is_flexible(v) == flexible)
            .map(|v| self.min_size_at(s, v))
            .min()
            .unwrap_or(1)
            .max(1)
    }

    fn min_size_at(&self, s: &Struct, v: i16) -> usize {
        let fl = self.m.is_flexible(v);
        let mut n = usize::from(fl);
        for f in &s.fields {
            if f.tag.is_some() || !f.versions.contains(v) {
                continue;
            }
            n += match &f.ty {
                Ty::Bool | Ty::I8 => 1,
                Ty::I16 => 2,
                Ty::I32 => 4,
                Ty::I64 => 8,
                Ty::Uuid => 16,
                Ty::String => {
                    if fl {
                        1
                    } else {
                        2
                    }
                }
                Ty::Bytes | Ty::Records | Ty::Array(_) => {
                    if fl {
                        1
                    } else {
                        4
                    }
                }
                Ty::Struct(n) => self.min_size_at(self.m.get(n), v),
            };
        }
        n
    }

    fn min_expr(&self, elem: &Ty) -> String {
        let (a, b) = match elem {
            Ty::Bool | Ty::I8 => (1, 1),
            Ty::I16 => (2, 2),
            Ty::I32 => (4, 4),
            Ty::I64 => (8, 8),
            Ty::Uuid => (16, 16),
            Ty::String => (1, 2),
            Ty::Bytes | Ty::Records | Ty::Array(_) => (1, 4),
            Ty::Struct(n) => {
                let s = self.m.get(n);
                (self.min_size(s, true), self.min_size(s, false))
            }
        };
        if a == b || self.fl == "false" {
            b.to_string()
        } else if self.m.flexible == Some(self.m.versions.lo) {
            a.to_string()
        } else {
            format!("if fl {{ {a} }} else {{ {b} }}")
        }
    }

    /// Statements writing one non-null element `x` (a reference) of type `t`.
    fn enc_elem(&self, t: &Ty, x: &str) -> String {
        let fl = self.fl;
        if let Some(p) = fixed(t) {
            return format!("out.put_{p}(*{x});");
        }
        match t {
            Ty::Uuid => format!("out.put_uuid({x});"),
            Ty::String => format!("out.put_string({x}, {fl});"),
            Ty::Bytes | Ty::Records => format!("out.put_bytes({x}, {fl});"),
            Ty::Struct(_) => format!("{x}.write(version, out);"),
            Ty::Array(_) => panic!("arrays of arrays are not supported"),
            Ty::Bool | Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 => unreachable!("fixed() has these"),
        }
    }

    /// Statements writing field `f` of `self` (the field is present at this version).
    fn enc_field(&self, f: &Field, within: Versions) -> String {
        let fl = self.fl;
        let v = format!("self.{}", f.name);
        let null = f.nullable.map(|n| cond(n, within)).unwrap_or(Cond::Never);
        let both = |nullable: String, not: String| match &null {
            Cond::Always => nullable,
            Cond::Never => not,
            Cond::When(c) => format!("if {c} {{ {nullable} }} else {{ {not} }}"),
        };
        if let Some(p) = fixed(&f.ty) {
            return format!("out.put_{p}({v});");
        }
        match &f.ty {
            Ty::Bool | Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 => unreachable!("fixed() has these"),
            Ty::Uuid => format!("out.put_uuid(&{v});"),
            Ty::String if f.nullable.is_some() => both(
                format!("out.put_nullable_string({v}.as_deref(), {fl});"),
                format!("out.put_string({v}.as_deref().unwrap_or(\"\"), {fl});"),
            ),
            Ty::String => format!("out.put_string(&{v}, {fl});"),
            Ty::Bytes | Ty::Records if f.nullable.is_some() => both(
                format!("out.put_nullable_bytes({v}.as_deref(), {fl});"),
                format!("out.put_bytes({v}.as_deref().unwrap_or(&[]), {fl});"),
            ),
            Ty::Bytes | Ty::Records => format!("out.put_bytes(&{v}, {fl});"),
            Ty::Struct(_) => {
                assert!(f.nullable.is_none(), "{}: nullable structs", f.name);
                format!("{v}.write(version, out);")
            }
            Ty::Array(e) => {
                let elem = self.enc_elem(e, "x");
                if f.nullable.is_some() {
                    let len = both(
                        format!("out.put_array_len({v}.as_ref().map(Vec::len), {fl});"),
                        format!("out.put_array_len(Some({v}.as_ref().map_or(0, Vec::len)), {fl});"),
                    );
                    format!("{len}\nfor x in {v}.iter().flatten() {{ {elem} }}")
                } else {
                    format!("out.put_array_len(Some({v}.len()), {fl});\nfor x in &{v} {{ {elem} }}")
                }
            }
        }
    }

    /// An expression reading one non-null element of type `t`.
    fn dec_elem(&self, t: &Ty, what: &str) -> String {
        let fl = self.fl;
        if let Some(p) = fixed(t) {
            return format!("r.{p}({what})");
        }
        match t {
            Ty::Uuid => format!("r.uuid({what})"),
            Ty::String => format!("r.string({fl}, {what})"),
            Ty::Bytes | Ty::Records => format!("r.bytes({fl}, {what}).map(Bytes::copy_from_slice)"),
            Ty::Struct(s) => format!("{s}::read(r, version)"),
            Ty::Array(_) => panic!("arrays of arrays are not supported"),
            Ty::Bool | Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 => unreachable!("fixed() has these"),
        }
    }

    /// An expression (ending in `?`) reading field `f`.
    fn dec_field(&self, s: &Struct, f: &Field, within: Versions) -> String {
        let fl = self.fl;
        let what = format!("\"{}{}\"", self.paths[&s.name], f.name);
        let null = f.nullable.map(|n| cond(n, within)).unwrap_or(Cond::Never);
        let both = |nullable: String, not: String| match &null {
            Cond::Always => nullable,
            Cond::Never => not,
            Cond::When(c) => format!("if {c} {{ {nullable} }} else {{ {not} }}"),
        };
        match &f.ty {
            Ty::String if f.nullable.is_some() => both(
                format!("r.nullable_string({fl}, {what})?"),
                format!("Some(r.string({fl}, {what})?)"),
            ),
            Ty::Bytes | Ty::Records if f.nullable.is_some() => both(
                format!("r.nullable_bytes({fl}, {what})?.map(Bytes::copy_from_slice)"),
                format!("Some(Bytes::copy_from_slice(r.bytes({fl}, {what})?))"),
            ),
            Ty::Array(e) => {
                let min = self.min_expr(e);
                let ew = format!("\"{}{}[]\"", self.paths[&s.name], f.name);
                let elem = self.dec_elem(e, &ew);
                if f.nullable.is_some() {
                    both(
                        format!("r.nullable_vec({fl}, {min}, {what}, |r| {elem})?"),
                        format!("Some(r.vec({fl}, {min}, {what}, |r| {elem})?)"),
                    )
                } else {
                    format!("r.vec({fl}, {min}, {what}, |r| {elem})?")
                }
            }
            t => format!("{}?", self.dec_elem(t, &what)),
        }
    }

    /// The condition under which a tagged field is written: present and not its default.
    fn tag_cond(&self, f: &Field, within: Versions) -> String {
        let v = format!("self.{}", f.name);
        let (d, _) = self.default_expr(f);
        let differs = match (&f.ty, d.as_str()) {
            (_, "None") => format!("{v}.is_some()"),
            (Ty::Array(_), "Vec::new()") | (Ty::String, "String::new()") => {
                format!("!{v}.is_empty()")
            }
            (Ty::Bytes | Ty::Records, "Bytes::new()") => format!("!{v}.is_empty()"),
            (Ty::Bool, "false") => v.clone(),
            (Ty::Bool, "true") => format!("!{v}"),
            (Ty::Struct(_), d) => format!("{v} != {d}"),
            (_, d) => format!("{v} != {d}"),
        };
        match cond(f.versions, within) {
            Cond::Always => differs,
            Cond::Never => "false".into(),
            Cond::When(c) => format!("{c} && {differs}"),
        }
    }

    fn write_struct(&self, s: &Struct, out: &mut String) {
        let m = self.m;
        let copy = if self.is_copy(s) { ", Copy" } else { "" };
        let natural = s.fields.iter().all(|f| self.default_expr(f).1);
        let derive_default = if natural { ", Default" } else { "" };
        let doc = if s.doc.is_empty() {
            format!("{} ({}).", s.name, m.name)
        } else {
            s.doc.clone()
        };
        let secret = s.fields.iter().any(|f| f.secret);
        let _ = writeln!(out, "/// {doc}");
        if secret {
            let _ = writeln!(
                out,
                "///\n/// `Debug` shows the length of {} only, never the bytes.",
                s.fields
                    .iter()
                    .filter(|f| f.secret)
                    .map(|f| format!("`{}`", f.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let debug = if secret { "" } else { "Debug, " };
        let _ = writeln!(
            out,
            "#[derive({debug}Clone, PartialEq, Eq{copy}{derive_default})]"
        );
        let _ = writeln!(out, "#[cfg_attr(test, derive(proptest_derive::Arbitrary))]");
        let _ = writeln!(out, "pub struct {} {{", s.name);
        for f in &s.fields {
            let _ = writeln!(out, "/// {}", f.doc);
            if let Some(st) = self.strategy(f) {
                let _ = writeln!(out, "#[cfg_attr(test, proptest(strategy = \"{st}\"))]");
            }
            let _ = writeln!(out, "pub {}: {},", f.name, self.rust_type(f));
        }
        let _ = writeln!(out, "}}\n");
        if secret {
            let _ = writeln!(out, "impl std::fmt::Debug for {} {{", s.name);
            let _ = writeln!(
                out,
                "fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{"
            );
            let _ = write!(out, "f.debug_struct(\"{}\")", s.name);
            for fd in &s.fields {
                if fd.secret {
                    let len = if fd.nullable.is_some() {
                        format!("self.{}.as_ref().map(|b| b.len())", fd.name)
                    } else {
                        format!("self.{}.len()", fd.name)
                    };
                    let _ = write!(
                        out,
                        ".field(\"{}\", &format_args!(\"<{{:?}} bytes, redacted>\", {len}))",
                        fd.name
                    );
                } else {
                    let _ = write!(out, ".field(\"{0}\", &self.{0})", fd.name);
                }
            }
            let _ = writeln!(out, ".finish()\n}}\n}}\n");
        }
        if !natural {
            let _ = writeln!(out, "impl Default for {} {{", s.name);
            let _ = writeln!(out, "fn default() -> Self {{ {} {{", s.name);
            for f in &s.fields {
                let _ = writeln!(out, "{}: {},", f.name, self.default_expr(f).0);
            }
            let _ = writeln!(out, "}} }}\n}}\n");
        }

        // write
        let Some(&within) = self.reach.get(&s.name) else {
            panic!("{}: struct {} is never reachable", m.name, s.name)
        };
        let mut stmts = Vec::new();
        for f in s.fields.iter().filter(|f| f.tag.is_none()) {
            let present = intersect(f.versions, within);
            match cond(f.versions, within) {
                Cond::Never => continue,
                Cond::Always => stmts.push((None, self.enc_field(f, present))),
                Cond::When(c) => stmts.push((Some(c), self.enc_field(f, present))),
            }
        }
        let mut body = grouped(stmts);
        let mut tagged: Vec<&Field> = s.fields.iter().filter(|f| f.tag.is_some()).collect();
        tagged.sort_by_key(|f| f.tag);
        let flexible_within = Versions {
            lo: within.lo.max(m.flexible.unwrap_or(i16::MAX)),
            hi: within.hi,
        };
        if tagged.is_empty() {
            if self.fl == "fl" {
                let _ = writeln!(body, "out.put_empty_tags(fl);");
            }
        } else {
            let _ = writeln!(body, "if fl {{");
            let mut sum = Vec::new();
            for (i, f) in tagged.iter().enumerate() {
                let _ = writeln!(body, "let t{i} = {};", self.tag_cond(f, flexible_within));
                sum.push(format!("u32::from(t{i})"));
            }
            let _ = writeln!(body, "out.put_uvarint({});", sum.join(" + "));
            for (i, f) in tagged.iter().enumerate() {
                let present = intersect(f.versions, flexible_within);
                let _ = writeln!(
                    body,
                    "if t{i} {{ put_tagged_field(out, {}, |out| {{ {} }}); }}",
                    f.tag.unwrap(),
                    self.enc_field(f, present)
                );
            }
            let _ = writeln!(body, "}}");
        }
        let fl_line = if self.fl == "fl" {
            "let fl = version >= FLEXIBLE_FROM;\n"
        } else {
            ""
        };
        let full = format!("{fl_line}{body}");
        let vname = if uses_ident(&full, "version") {
            "version"
        } else {
            "_version"
        };
        let _ = writeln!(out, "impl {} {{", s.name);
        let _ = writeln!(
            out,
            "fn write(&self, {vname}: i16, out: &mut Vec<u8>) {{\n{full}}}\n"
        );

        // read
        let mut body = String::new();
        let assigned = s.fields.iter().any(|f| {
            !matches!(cond(f.versions, within), Cond::Never)
                && (f.tag.is_none() || m.flexible.is_some())
        });
        let _ = writeln!(
            body,
            "let {}m = Self::default();",
            if assigned { "mut " } else { "" }
        );
        let mut stmts = Vec::new();
        for f in s.fields.iter().filter(|f| f.tag.is_none()) {
            let present = intersect(f.versions, within);
            let stmt = format!("m.{} = {};", f.name, self.dec_field(s, f, present));
            match cond(f.versions, within) {
                Cond::Never => continue,
                Cond::Always => stmts.push((None, stmt)),
                Cond::When(c) => stmts.push((Some(c), stmt)),
            }
        }
        body.push_str(&grouped(stmts));
        if tagged.is_empty() {
            if self.fl == "fl" {
                let _ = writeln!(body, "r.skip_tags(fl)?;");
            }
        } else {
            let _ = writeln!(body, "r.tagged_fields(fl, |tag, r| {{ match tag {{");
            for f in &tagged {
                let present = intersect(f.versions, flexible_within);
                let guard = match cond(f.versions, flexible_within) {
                    Cond::Never => continue,
                    Cond::Always => String::new(),
                    Cond::When(c) => format!(" if {c}"),
                };
                let _ = writeln!(
                    body,
                    "{}{guard} => m.{} = {},",
                    f.tag.unwrap(),
                    f.name,
                    self.dec_field(s, f, present)
                );
            }
            let _ = writeln!(body, "_ => return Ok(false), }} Ok(true) }})?;");
        }
        let _ = writeln!(body, "Ok(m)");
        let full = format!("{fl_line}{body}");
        let vname = if uses_ident(&full, "version") {
            "version"
        } else {
            "_version"
        };
        let rname = if uses_ident(&full, "r") { "r" } else { "_r" };
        let _ = writeln!(
            out,
            "fn read({rname}: &mut Reader<'_>, {vname}: i16) -> Result<Self, DecodeError> {{\n{full}}}\n}}\n"
        );
    }

    /// Versions at which a round trip gives back every field of `s` unchanged.
    fn full_versions(&self, s: &Struct) -> Vec<i16> {
        self.m
            .all_versions()
            .filter(|&v| self.full_at(s, v))
            .collect()
    }

    fn full_at(&self, s: &Struct, v: i16) -> bool {
        s.fields.iter().all(|f| {
            f.versions.contains(v)
                && (f.tag.is_none() || self.m.is_flexible(v))
                && f.nullable.is_none_or(|n| n.contains(v))
                && f.ty
                    .struct_name()
                    .is_none_or(|n| self.full_at(self.m.get(n), v))
        })
    }
}

/// The `Writer::put_*` / `Reader::*` name of a fixed-size integer or boolean type.
fn fixed(t: &Ty) -> Option<&'static str> {
    Some(match t {
        Ty::Bool => "bool",
        Ty::I8 => "i8",
        Ty::I16 => "i16",
        Ty::I32 => "i32",
        Ty::I64 => "i64",
        _ => return None,
    })
}

/// Statements, with consecutive ones under the same condition in one `if`.
fn grouped(stmts: Vec<(Option<String>, String)>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < stmts.len() {
        let mut j = i + 1;
        while j < stmts.len() && stmts[j].0 == stmts[i].0 {
            j += 1;
        }
        let block: Vec<&str> = stmts[i..j].iter().map(|s| s.1.as_str()).collect();
        match &stmts[i].0 {
            None => {
                for b in block {
                    let _ = writeln!(out, "{b}");
                }
            }
            Some(c) => {
                let _ = writeln!(out, "if {c} {{\n{}\n}}", block.join("\n"));
            }
        }
        i = j;
    }
    out
}

/// Whether `ident` occurs in `code` as a whole identifier.
fn uses_ident(code: &str, ident: &str) -> bool {
    let b = code.as_bytes();
    let is_id = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut from = 0;
    while let Some(i) = code[from..].find(ident) {
        let at = from + i;
        let end = at + ident.len();
        let before = at == 0 || !(is_id(b[at - 1]) || b[at - 1] == b'.');
        let after = end >= b.len() || !is_id(b[end]);
        if before && after {
            return true;
        }
        from = end;
    }
    false
}

fn gate_attr(m: &Message) -> String {
    match m.gate.as_deref() {
        Some(g) => format!("#[cfg(any(test, feature = \"{g}\"))]\n"),
        None => String::new(),
    }
}

fn range_text(m: &Message) -> String {
    if m.versions.lo == m.versions.hi {
        format!("version {}", m.versions.lo)
    } else {
        format!("versions {}–{}", m.versions.lo, m.versions.hi)
    }
}

/// The upper-snake constant for a message name (`InitProducerId` → `INIT_PRODUCER_ID`).
pub fn const_name(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    s
}

pub fn message_module(m: &Message, spec_path: &str) -> String {
    let fl = if m.flexible.is_some() { "fl" } else { "false" };
    let g = Gen {
        m,
        reach: reach(m),
        paths: paths(m),
        fl,
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @generated by `cargo xtask codegen` from {spec_path}. Do not edit: change the spec."
    );
    let flex = match m.flexible {
        Some(f) if f <= m.versions.hi => format!(", flexible from {f}"),
        _ => ", no flexible versions".into(),
    };
    let _ = writeln!(
        out,
        "//! {} (key {}), {}{flex}: {}",
        m.name,
        m.key,
        range_text(m),
        m.doc
    );
    if !m.notes.is_empty() {
        let _ = writeln!(out, "//!");
        for n in &m.notes {
            let _ = writeln!(out, "//! {n}");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "#![allow(clippy::field_reassign_with_default)]\n");
    let all_types: Vec<&Ty> = m
        .structs
        .values()
        .flat_map(|s| s.fields.iter().map(|f| &f.ty))
        .collect();
    let has = |p: &dyn Fn(&Ty) -> bool| {
        all_types.iter().any(|t| match t {
            Ty::Array(e) => p(e) || p(t),
            t => p(t),
        })
    };
    if has(&|t| matches!(t, Ty::Bytes | Ty::Records)) {
        let _ = writeln!(out, "use bytes::Bytes;\n");
    }
    let tagged = m
        .structs
        .values()
        .any(|s| s.fields.iter().any(|f| f.tag.is_some()));
    let mut codec = vec![];
    if tagged {
        codec.push("put_tagged_field");
    }
    codec.extend(["DecodeError", "Reader"]);
    if has(&|t| matches!(t, Ty::Uuid)) {
        codec.push("Uuid");
    }
    codec.push("Writer");
    let _ = writeln!(
        out,
        "use crate::protocol::api::{{ApiKey, Request, Response}};"
    );
    let _ = writeln!(
        out,
        "use crate::protocol::codec::{{{}}};\n",
        codec.join(", ")
    );
    let flexible_from = m.flexible.unwrap_or(i16::MAX);
    let _ = writeln!(
        out,
        "/// The first flexible (tagged-field) version{}.",
        if m.flexible.is_none() {
            " (none: `i16::MAX`)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "const FLEXIBLE_FROM: i16 = {flexible_from};\n");
    for name in &m.order {
        g.write_struct(m.get(name), &mut out);
    }
    let _ = writeln!(
        out,
        "impl Request for {req} {{
type Response = {resp};
const API_KEY: ApiKey = ApiKey::{key};
const MIN_VERSION: i16 = {lo};
const MAX_VERSION: i16 = {hi};
const FLEXIBLE_FROM: i16 = FLEXIBLE_FROM;
fn encode(&self, version: i16, out: &mut Vec<u8>) {{ self.write(version, out) }}
fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {{ Self::read(r, version) }}
}}

impl Response for {resp} {{
fn encode(&self, version: i16, out: &mut Vec<u8>) {{ self.write(version, out) }}
fn decode(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {{ Self::read(r, version) }}
}}
",
        req = m.request,
        resp = m.response,
        key = const_name(&m.name),
        lo = m.versions.lo,
        hi = m.versions.hi,
    );
    let list = |v: Vec<i16>| v.iter().map(i16::to_string).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        out,
        "#[cfg(test)]
mod tests {{
    use super::*;

    // Versions where every field is carried (so a round trip gives the value back whole);
    // at the others the byte fixpoint is checked.
    crate::protocol::testing::roundtrip_tests!(
        {req},
        {resp},
        full_req = [{fr}],
        full_resp = [{fp}]
    );
}}",
        req = m.request,
        resp = m.response,
        fr = list(g.full_versions(m.get(&m.request))),
        fp = list(g.full_versions(m.get(&m.response))),
    );
    out
}

pub fn registry(msgs: &[Message]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// @generated by `cargo xtask codegen` from src/protocol/spec/*.spec. Do not edit: change the specs."
    );
    let _ = writeln!(
        out,
        "//! The Kafka messages kprod speaks, both directions: the client side (encode request,
//! decode response) and the broker side (decode request, encode response), each generated
//! from its spec in `src/protocol/spec/`.
//!
//! Each message is one struct holding the union of its fields across versions; a field
//! outside a version's range is neither written nor read (it decodes to its default). Field
//! names follow Kafka's JSON message definitions in snake case. Decoders check every length
//! and count against the bytes that remain before allocating, skip unknown tagged fields
//! within their bounds, and return [`DecodeError`] rather than panic.
//!
//! | API | key | versions | flexible from | module |
//! |---|---|---|---|---|"
    );
    for m in msgs {
        let _ = writeln!(
            out,
            "//! | {} | {} | {}–{} | {} | {}{} |",
            m.name,
            m.key,
            m.versions.lo,
            m.versions.hi,
            m.flexible
                .filter(|f| *f <= m.versions.hi)
                .map_or("—".to_owned(), |f| f.to_string()),
            if m.gate.is_some() {
                format!("`{}`", m.module)
            } else {
                format!("[`{}`]", m.module)
            },
            if m.gate.is_some() {
                " (feature `mock`)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out);
    for m in msgs {
        let _ = writeln!(out, "{}pub mod {};", gate_attr(m), m.module);
    }
    let _ = writeln!(
        out,
        "
pub use super::api::{{MessageInfo, Request, Response}};
use super::api::ApiKey;
use super::codec::{{DecodeError, Reader}};

impl ApiKey {{"
    );
    for m in msgs {
        let _ = writeln!(
            out,
            "    #[doc = \"`{}` (key {}).\"]\n    pub const {}: ApiKey = ApiKey({});",
            m.name,
            m.key,
            const_name(&m.name),
            m.key
        );
    }
    let _ = writeln!(
        out,
        "
    /// The API's name as Kafka spells it, or `\"Unknown\"`.
    pub fn name(self) -> &'static str {{
        match self.0 {{"
    );
    for m in msgs {
        let _ = writeln!(out, "            {} => \"{}\",", m.key, m.name);
    }
    let _ = writeln!(
        out,
        "            _ => \"Unknown\",
        }}
    }}
}}

/// Every API kprod implements, by key: the versions and the first flexible version.
pub const MESSAGES: &[MessageInfo] = &["
    );
    for m in msgs {
        let _ = writeln!(
            out,
            "    MessageInfo {{ api_key: ApiKey::{}, min_version: {}, max_version: {}, flexible_from: {} }},",
            const_name(&m.name),
            m.versions.lo,
            m.versions.hi,
            m.flexible.unwrap_or(i16::MAX)
        );
    }
    let _ = writeln!(
        out,
        "];

/// What kprod implements of `api`, if anything.
pub fn message_info(api: ApiKey) -> Option<&'static MessageInfo> {{
    MESSAGES
        .binary_search_by_key(&api, |m| m.api_key)
        .ok()
        .map(|i| &MESSAGES[i])
}}

/// Decodes `body` as the request (or, with `response`, the response) of `api` at `version`
/// and drops the value: one entry point to every decoder, for the fuzz targets and the
/// hostile-input tests. Bytes left over are an error, as in a frame.
#[doc(hidden)]
pub fn decode_any(api: ApiKey, version: i16, response: bool, body: &[u8]) -> Result<(), DecodeError> {{
    fn one<R: Request>(version: i16, response: bool, body: &[u8]) -> Result<(), DecodeError> {{
        super::frame::check_version::<R>(version)?;
        let mut r = Reader::new(body);
        if response {{
            <R::Response as Response>::decode(&mut r, version)?;
        }} else {{
            R::decode(&mut r, version)?;
        }}
        r.finish(R::API_KEY.name())
    }}
    match api {{"
    );
    for m in msgs {
        let _ = writeln!(
            out,
            "        {}ApiKey::{} => one::<{}::{}>(version, response, body),",
            gate_attr(m).replace('\n', " "),
            const_name(&m.name),
            m.module,
            m.request
        );
    }
    let _ = writeln!(
        out,
        "        _ => Err(DecodeError::UnsupportedVersion {{ api: api.name(), version, min: 0, max: -1 }}),
    }}
}}"
    );
    out
}
