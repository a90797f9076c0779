//! The report as a list of plain blocks, rendered to Markdown and to one
//! self-contained HTML page (CSS inline, figures as inline SVG). Text may use
//! `**bold**` and `` `code` ``; everything else is escaped.

use crate::figures::Drawn;

/// A block of the report.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A heading of level 1 to 3.
    Heading(u8, String),
    /// A paragraph.
    Para(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table: header and rows (cells as text).
    Table(Vec<String>, Vec<Vec<String>>),
    /// Preformatted text, shown as is.
    Code(String),
    /// Preformatted text folded under a summary line (HTML `<details>`).
    Folded(String, String),
    /// A figure (or why it is missing).
    Figure(Drawn),
}

/// Renders `blocks` as Markdown; figures link to their PNG files in `figures/`.
///
/// ```
/// use dagwire_analysis::report::doc::{Block, markdown};
/// let md = markdown(&[Block::Heading(1, "Report".into()), Block::Table(vec!["a".into()], vec![vec!["1|2".into()]])]);
/// assert_eq!(md, "# Report\n\n| a |\n|---|\n| 1\\|2 |\n\n");
/// ```
pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => out.push_str(&format!("{} {text}\n\n", "#".repeat(*level as usize))),
            Block::Para(text) => out.push_str(&format!("{text}\n\n")),
            Block::List(items) => {
                items.iter().for_each(|i| out.push_str(&format!("- {i}\n")));
                out.push('\n');
            }
            Block::Table(header, rows) => {
                let cell = |c: &String| c.replace('|', "\\|");
                out.push_str(&format!("| {} |\n", header.iter().map(cell).collect::<Vec<_>>().join(" | ")));
                out.push_str(&format!("|{}|\n", vec!["---"; header.len()].join("|")));
                for r in rows {
                    out.push_str(&format!("| {} |\n", r.iter().map(cell).collect::<Vec<_>>().join(" | ")));
                }
                out.push('\n');
            }
            Block::Code(text) => out.push_str(&format!("```text\n{}\n```\n\n", text.trim_end())),
            Block::Folded(summary, text) => {
                out.push_str(&format!("{summary}:\n\n```text\n{}\n```\n\n", text.trim_end()))
            }
            Block::Figure(Drawn::Figure(f)) => out.push_str(&format!(
                "### {}\n\n![{}](figures/{}.png)\n\n{} (SVG: [`figures/{}.svg`](figures/{}.svg))\n\n",
                f.title, f.title, f.name, f.caption, f.name, f.name
            )),
            Block::Figure(Drawn::Skipped { title, reason }) => {
                out.push_str(&format!("### {title}\n\n*Not drawn: {reason}*\n\n"))
            }
        }
    }
    out
}

/// Renders `blocks` as one self-contained HTML page titled `title`.
///
/// ```
/// use dagwire_analysis::report::doc::{Block, html};
/// let page = html("R <1>", &[Block::Para("**x** < `y`".into())]);
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains("<p><strong>x</strong> &lt; <code>y</code></p>"));
/// assert!(page.contains("<title>R &lt;1&gt;</title>"));
/// ```
pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n",
        escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(level, text) => out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(text))),
            Block::Para(text) => out.push_str(&format!("<p>{}</p>\n", inline(text))),
            Block::List(items) => {
                out.push_str("<ul>\n");
                items.iter().for_each(|i| out.push_str(&format!("<li>{}</li>\n", inline(i))));
                out.push_str("</ul>\n");
            }
            Block::Table(header, rows) => {
                out.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
                header.iter().for_each(|h| out.push_str(&format!("<th>{}</th>", inline(h))));
                out.push_str("</tr></thead>\n<tbody>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        let class = if c.parse::<f64>().is_ok() || c == "-" { " class=\"num\"" } else { "" };
                        out.push_str(&format!("<td{class}>{}</td>", inline(c)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table></div>\n");
            }
            Block::Code(text) => out.push_str(&format!("<pre>{}</pre>\n", escape(text.trim_end()))),
            Block::Folded(summary, text) => out.push_str(&format!(
                "<details><summary>{}</summary><pre>{}</pre></details>\n",
                inline(summary),
                escape(text.trim_end())
            )),
            Block::Figure(Drawn::Figure(f)) => out.push_str(&format!(
                "<figure id=\"{}\">\n<h3>{}</h3>\n{}\n<figcaption>{} <a href=\"figures/{}.svg\">SVG</a> · <a href=\"figures/{}.png\">PNG</a></figcaption>\n</figure>\n",
                escape(&f.name),
                escape(&f.title),
                strip_xml_header(&f.svg),
                inline(&f.caption),
                escape(&f.name),
                escape(&f.name)
            )),
            Block::Figure(Drawn::Skipped { title, reason }) => out.push_str(&format!(
                "<div class=\"skipped\"><h3>{}</h3><p>Not drawn: {}</p></div>\n",
                escape(title),
                inline(reason)
            )),
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

const CSS: &str = "body { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #1f77b4; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
th { background: #f0f4f8; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 13px; }
code { background: #f0f0f0; padding: 0 3px; border-radius: 3px; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 14px; margin-top: .3em; }
.skipped { border-left: 4px solid #bbb; padding: 0 1em; color: #555; }
";

/// `text` with `&`, `<`, `>`, `"` escaped.
///
/// ```
/// assert_eq!(dagwire_analysis::report::doc::escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
/// ```
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Escapes `text` and turns `**bold**` and `` `code` `` into HTML.
fn inline(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
            }
            c => out.push(c),
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

/// The SVG without an XML declaration, for inlining in HTML.
fn strip_xml_header(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}
