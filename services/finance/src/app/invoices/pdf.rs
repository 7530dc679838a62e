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

/// The lines of the page, top to bottom: (font size, x, text).
fn lines(i: &invoice::Model) -> Vec<(f32, f32, String)> {
    let date = i
        .issued_at
        .with_timezone(&super::gst::ist())
        .format("%d-%m-%Y");
    let mut l = vec![
        (18.0, 56.0, "TAX INVOICE".to_owned()),
        (11.0, 56.0, i.supplier_name.clone()),
        (10.0, 56.0, i.supplier_address.clone()),
        (
            10.0,
            56.0,
            format!(
                "GSTIN: {}   State: {}",
                i.supplier_gstin,
                state(&i.supplier_state)
            ),
        ),
        (10.0, 56.0, String::new()),
        (11.0, 56.0, format!("Invoice No: {}", i.number)),
        (11.0, 56.0, format!("Invoice Date: {date}")),
        (
            11.0,
            56.0,
            format!("Place of Supply: {}", state(&i.place_of_supply)),
        ),
        (10.0, 56.0, String::new()),
        (11.0, 56.0, format!("Bill To: {}", i.buyer_name)),
    ];
    if i.b2b {
        l.push((10.0, 56.0, format!("Buyer GSTIN: {}", i.buyer_gstin)));
    }
    l.push((
        10.0,
        56.0,
        format!("Buyer State: {}", state(&i.buyer_state)),
    ));
    l.push((10.0, 56.0, String::new()));
    l.push((10.0, 56.0, format!("Description: {}", i.description)));
    l.push((
        10.0,
        56.0,
        format!("SAC: {}   GST rate: {}%", i.sac_code, i.gst_rate_percent),
    ));
    l.push((
        10.0,
        56.0,
        format!("Taxable value: INR {}", rupees(i.taxable_paise)),
    ));
    if i.igst_paise > 0 || i.cgst_paise + i.sgst_paise == 0 {
        l.push((
            10.0,
            56.0,
            format!(
                "IGST @ {}%: INR {}",
                i.gst_rate_percent,
                rupees(i.igst_paise)
            ),
        ));
    } else {
        let half = f64::from(i.gst_rate_percent) / 2.0;
        l.push((
            10.0,
            56.0,
            format!("CGST @ {half}%: INR {}", rupees(i.cgst_paise)),
        ));
        l.push((
            10.0,
            56.0,
            format!("SGST @ {half}%: INR {}", rupees(i.sgst_paise)),
        ));
    }
    l.push((12.0, 56.0, format!("Total: INR {}", rupees(i.total_paise))));
    l.push((10.0, 56.0, String::new()));
    l.push((
        8.0,
        56.0,
        "Amounts in Indian rupees; GST included in the price paid.".to_owned(),
    ));
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
    for (size, x, text) in lines(i) {
        if !text.is_empty() {
            content.begin_text();
            content.set_font(name, size);
            content.next_line(x, y);
            content.show(Str(&ascii(&text)));
            content.end_text();
        }
        y -= size + 8.0;
    }
    pdf.stream(content_id, &content.finish());
    pdf.finish()
}
