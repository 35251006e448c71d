//! Markdown (the subset docs/*.md use) to man-page roff, so that tandem.toml(5) is made from
//! docs/tandem-toml.md and the two cannot disagree.
//!
//! `##` headings become sections, `###` subsections, paragraphs and lists stay what they are,
//! code blocks are set unfilled, and a table becomes one tagged paragraph per row: the first
//! cell is the tag, the middle cells a parenthesised "header: value" list, the last cell the
//! text (the way man pages list keys).

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use roff::{bold, italic, roman, Inline, Roff};

/// The document's `#` title and its body as roff (sections and paragraphs, no `.TH`).
pub struct Converted {
    /// The text of the first level-1 heading.
    pub title: String,
    /// Everything after the title, as roff requests and text lines.
    pub body: Roff,
}

/// Converts `markdown`. The text before the first `##` heading goes under `first_section`.
pub fn to_roff(markdown: &str, first_section: &str) -> Converted {
    let mut out = Converter {
        roff: Roff::new(),
        inlines: Vec::new(),
        font: Vec::new(),
        title: String::new(),
        table: None,
        in_title: false,
    };
    out.roff.control("SH", [first_section]);
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        out.event(event);
    }
    Converted {
        title: out.title,
        body: out.roff,
    }
}

/// A table being collected: its header cells and rows of cells.
#[derive(Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Vec<Inline>>>,
    in_header: bool,
}

struct Converter {
    roff: Roff,
    /// The text of the block being read.
    inlines: Vec<Inline>,
    /// Open emphasis, innermost last: text takes the innermost font.
    font: Vec<fn(String) -> Inline>,
    title: String,
    table: Option<Table>,
    in_title: bool,
}

impl Converter {
    fn event(&mut self, event: Event) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(end) => self.end(end),
            Event::Text(text) if self.in_title => self.title.push_str(&text),
            Event::Text(text) => self.push(text.into_string()),
            Event::Code(code) => self.inlines.push(bold(code.into_string())),
            Event::SoftBreak => self.push(" ".into()),
            Event::HardBreak => self.inlines.push(roff::line_break()),
            _ => {}
        }
    }

    fn push(&mut self, text: String) {
        let font = self.font.last().copied().unwrap_or(roman);
        self.inlines.push(font(text));
    }

    fn start(&mut self, tag: Tag) {
        match tag {
            Tag::Heading {
                level: HeadingLevel::H1,
                ..
            } => self.in_title = true,
            Tag::Paragraph => {
                self.roff.control("PP", []);
            }
            Tag::CodeBlock(CodeBlockKind::Fenced(_) | CodeBlockKind::Indented) => {
                self.roff
                    .control("PP", [])
                    .control("RS", ["4"])
                    .control("nf", []);
            }
            Tag::Item => {
                self.roff.control("IP", ["\\(bu", "2"]);
            }
            Tag::Emphasis => self.font.push(italic),
            Tag::Strong => self.font.push(bold),
            Tag::Table(_) => self.table = Some(Table::default()),
            Tag::TableHead => {
                if let Some(table) = &mut self.table {
                    table.in_header = true;
                }
            }
            Tag::TableRow => {
                if let Some(table) = &mut self.table {
                    table.rows.push(Vec::new());
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, end: TagEnd) {
        match end {
            TagEnd::Heading(HeadingLevel::H1) => self.in_title = false,
            TagEnd::Heading(level) => {
                let text = plain(&std::mem::take(&mut self.inlines));
                let request = if level == HeadingLevel::H2 {
                    "SH"
                } else {
                    "SS"
                };
                self.roff.control(request, [text.as_str()]);
            }
            TagEnd::Paragraph | TagEnd::Item => self.flush_text(),
            TagEnd::CodeBlock => {
                let text = plain(&std::mem::take(&mut self.inlines));
                self.roff.text([roman(text.trim_end())]);
                self.roff.control("fi", []).control("RE", []);
            }
            TagEnd::Emphasis | TagEnd::Strong => {
                self.font.pop();
            }
            TagEnd::TableCell => {
                let cell = std::mem::take(&mut self.inlines);
                if let Some(table) = &mut self.table {
                    if table.in_header {
                        table.header.push(plain(&cell));
                    } else if let Some(row) = table.rows.last_mut() {
                        row.push(cell);
                    }
                }
            }
            TagEnd::TableHead => {
                if let Some(table) = &mut self.table {
                    table.in_header = false;
                }
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    self.table(table);
                }
            }
            _ => {}
        }
    }

    fn flush_text(&mut self) {
        let inlines = std::mem::take(&mut self.inlines);
        if !inlines.is_empty() {
            self.roff.text(inlines);
        }
    }

    /// One `.TP` per row: tag, "(header: value, ...)", text.
    fn table(&mut self, table: Table) {
        for mut row in table.rows.into_iter().filter(|row| !row.is_empty()) {
            let tag = row.remove(0);
            let text = if row.is_empty() {
                Vec::new()
            } else {
                row.pop().unwrap_or_default()
            };
            let details: Vec<String> = (table.header.iter().skip(1))
                .zip(&row)
                .map(|(name, cell)| format!("{name}: {}", plain(cell)))
                .collect();
            self.roff.control("TP", []).text(tag);
            let mut line = Vec::new();
            if !details.is_empty() {
                line.push(roman(format!("({}) ", details.join("; "))));
            }
            line.extend(text);
            self.roff.text(line);
        }
    }
}

/// The text of inline elements without their fonts.
fn plain(inlines: &[Inline]) -> String {
    inlines
        .iter()
        .map(|inline| match inline {
            Inline::Roman(text) | Inline::Italic(text) | Inline::Bold(text) => text.as_str(),
            Inline::LineBreak => "\n",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::to_roff;

    #[test]
    fn sections_tables_and_code_become_man_requests() {
        let md = "# A title\n\nIntro `code` and [a link](x.md).\n\n## `[sync]`\n\n\
                  | key | type | meaning |\n|---|---|---|\n| `port` | number | The *port*. |\n\n\
                  ```sh\n.starts with a dot\n```\n";
        let converted = to_roff(md, "DESCRIPTION");
        assert_eq!(converted.title, "A title");
        let roff = converted.body.to_roff();
        assert!(
            roff.contains(".SH DESCRIPTION\n.PP\nIntro \\fBcode\\fR and a link.\n"),
            "{roff}"
        );
        assert!(roff.contains(".SH [sync]\n"), "{roff}");
        assert!(
            roff.contains(".TP\n\\fBport\\fR\n(type: number) The \\fIport\\fR.\n"),
            "{roff}"
        );
        // A code line starting with a dot must not become a request.
        assert!(roff.contains(".nf\n\\&.starts with a dot\n.fi\n"), "{roff}");
    }
}
