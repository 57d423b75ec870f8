//! `authz-edge import-nginx FILE [--out PATH]`: an nginx configuration (with its includes)
//! read (`parse`), converted (`convert`), the config written to stdout or PATH and a report
//! to stderr, one line per directive: `FILE:LINE: DIRECTIVE: converted|partial (why)|
//! unsupported|ignored (why)`. Exit 0 when everything was converted or ignored, 3 when
//! something was partial or unsupported (the rest is still written), 2 when the file cannot be
//! read or parsed.

pub mod convert;
pub mod parse;

use std::path::Path;

/// The result of an import: the config's text, the report's lines, and the exit code.
pub struct Import {
    pub config: String,
    pub report: Vec<String>,
    /// Converted, partial, unsupported, ignored.
    pub counts: [usize; 4],
    pub code: u8,
}

/// Imports `file`; `Err` with the reason when it cannot be read or parsed.
pub fn import(file: &Path) -> Result<Import, String> {
    let directives = parse::read(file).map_err(|e| e.0)?;
    Ok(convert_all(&directives, true))
}

/// Converts directives already read (the fuzz target reads them from bytes); `lookup` false
/// stands in for host names instead of looking them up.
pub fn convert_all(directives: &[parse::Directive], lookup: bool) -> Import {
    let mut c = convert::Converter::default();
    c.offline = !lookup;
    c.run(directives);
    let code = if c.report.incomplete() { 3 } else { 0 };
    Import {
        config: c.toml(),
        counts: c.report.counts,
        report: c.report.lines(),
        code,
    }
}
