//! A small filecheck-style matcher for IR text tests.
//!
//! Directives are comment lines of the test file:
//! * `; check: TEXT`: TEXT occurs in a line after the previous match;
//! * `; nextln: TEXT`: TEXT occurs in the line right after the previous match;
//! * `; not: TEXT`: TEXT does not occur between the previous match and the next positive match (or the end).

/// One directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Substring in a later line.
    Check(String),
    /// Substring in the next line.
    NextLn(String),
    /// Substring absent until the next match.
    Not(String),
}

/// Extracts the directives of a test file, in order.
pub fn parse(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix(';') else { continue };
        let rest = rest.trim_start();
        if let Some(p) = rest.strip_prefix("check:") {
            out.push(Directive::Check(p.trim().to_string()));
        } else if let Some(p) = rest.strip_prefix("nextln:") {
            out.push(Directive::NextLn(p.trim().to_string()));
        } else if let Some(p) = rest.strip_prefix("not:") {
            out.push(Directive::Not(p.trim().to_string()));
        }
    }
    out
}

/// Matches directives against `output`; `Err` names the first failing directive and where.
pub fn check(directives: &[Directive], output: &str) -> Result<(), String> {
    let lines: Vec<&str> = output.lines().collect();
    // Index of the first line a `check` may match.
    let mut pos = 0usize;
    let mut last: Option<usize> = None;
    let mut pending_not: Vec<&str> = Vec::new();
    let flush_not = |pending: &mut Vec<&str>, from: usize, to: usize| -> Result<(), String> {
        for n in pending.drain(..) {
            if let Some(i) = (from..to).find(|&i| lines[i].contains(n)) {
                return Err(format!("`not: {n}` matched line {}: {}", i + 1, lines[i]));
            }
        }
        Ok(())
    };
    for d in directives {
        match d {
            Directive::Check(p) => {
                let Some(i) = (pos..lines.len()).find(|&i| lines[i].contains(p.as_str())) else {
                    return Err(format!("`check: {p}` not found after line {pos}"));
                };
                flush_not(&mut pending_not, pos, i)?;
                last = Some(i);
                pos = i + 1;
            }
            Directive::NextLn(p) => {
                let i = last.map_or(0, |l| l + 1);
                if i >= lines.len() || !lines[i].contains(p.as_str()) {
                    return Err(format!(
                        "`nextln: {p}` does not match line {}: {}",
                        i + 1,
                        lines.get(i).copied().unwrap_or("<end of output>")
                    ));
                }
                flush_not(&mut pending_not, pos, i)?;
                last = Some(i);
                pos = i + 1;
            }
            Directive::Not(p) => pending_not.push(p.as_str()),
        }
    }
    flush_not(&mut pending_not, pos, lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher() {
        let out = "a\nb c\nd\ne";
        let ok = parse("; check: b\n; nextln: d\n; not: zz\n; check: e");
        assert_eq!(check(&ok, out), Ok(()));
        assert!(check(&parse("; check: d\n; check: b"), out).is_err(), "order matters");
        assert!(check(&parse("; check: a\n; nextln: d"), out).is_err(), "nextln is the next line");
        assert!(check(&parse("; check: a\n; not: c\n; check: e"), out).is_err(), "not between matches");
        assert!(check(&parse("; check: nothere"), out).is_err());
    }
}
