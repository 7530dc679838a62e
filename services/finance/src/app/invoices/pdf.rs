//! An invoice as a PDF (pdf-writer): one A4 page in Helvetica, one of the standard fonts every
//! reader has, with WinAnsi text, so the file embeds no font and its text extracts as written.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::gst::{rupees, state_name};
use crate::store::entities::invoice;

/// WinAnsi holds ASCII as itself; anything else is shown as `?` rather than as a wrong glyph.
fn ascii(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

fn state(code: &str) -> String {
    match state_name(code) {
        Some(name) => format!("{name} ({code})"),
        None => code.to_owned(),
    }
}

/// The lines of the page, top to bottom: (font size, text); an empty text is a gap.
fn lines(i: &invoice::Model) -> Vec<(f32, String)> {
    let date = i
        .issued_at
        .with_timezone(&super::gst::ist())
        .format("%d-%m-%Y");
    let credit = i.kind == super::CREDIT_NOTE;
    let (title, what) = if credit {
        ("CREDIT NOTE", "Credit Note")
    } else {
        ("TAX INVOICE", "Invoice")
    };
    let supplier = format!(
        "GSTIN: {}   State: {}",
        i.supplier_gstin,
        state(&i.supplier_state)
    );
    let mut l = vec![
        (18.0, title.to_owned()),
        (11.0, i.supplier_name.clone()),
        (10.0, i.supplier_address.clone()),
        (10.0, supplier),
        (10.0, String::new()),
        (11.0, format!("{what} No: {}", i.number)),
        (11.0, format!("Date: {date}")),
        (
            11.0,
            format!("Place of Supply: {}", state(&i.place_of_supply)),
        ),
        (10.0, String::new()),
        (11.0, format!("Bill To: {}", i.buyer_name)),
    ];
    if i.b2b {
        l.push((10.0, format!("Buyer GSTIN: {}", i.buyer_gstin)));
    }
    let rate = i.gst_rate_percent;
    l.extend([
        (10.0, format!("Buyer State: {}", state(&i.buyer_state))),
        (10.0, String::new()),
        (10.0, format!("Description: {}", i.description)),
        (10.0, format!("SAC: {}   GST rate: {rate}%", i.sac_code)),
        (
            10.0,
            format!("Taxable value: INR {}", rupees(i.taxable_paise)),
        ),
    ]);
    if i.cgst_paise + i.sgst_paise == 0 {
        l.push((
            10.0,
            format!("IGST @ {rate}%: INR {}", rupees(i.igst_paise)),
        ));
    } else {
        let half = f64::from(rate) / 2.0;
        l.push((
            10.0,
            format!("CGST @ {half}%: INR {}", rupees(i.cgst_paise)),
        ));
        l.push((
            10.0,
            format!("SGST @ {half}%: INR {}", rupees(i.sgst_paise)),
        ));
    }
    l.extend([
        (12.0, format!("Total: INR {}", rupees(i.total_paise))),
        (10.0, String::new()),
        (
            8.0,
            "Amounts in Indian rupees; GST included in the price paid.".to_owned(),
        ),
    ]);
    l
}

pub fn render(i: &invoice::Model) -> Vec<u8> {
    let (catalog, tree, page_id, font, content_id, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let name = Name(b"F1");
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    page.parent(tree);
    page.contents(content_id);
    page.resources().fonts().pair(name, font);
    page.finish();
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let title = format!("Tax invoice {}", i.number);
    pdf.document_info(info).title(TextStr(&title));
    let mut content = Content::new();
    let mut y = 790.0;
    for (size, text) in lines(i) {
        if !text.is_empty() {
            content.begin_text();
            content.set_font(name, size);
            content.next_line(56.0, y);
            content.show(Str(&ascii(&text)));
            content.end_text();
        }
        y -= size + 8.0;
    }
    pdf.stream(content_id, &content.finish());
    pdf.finish()
}
