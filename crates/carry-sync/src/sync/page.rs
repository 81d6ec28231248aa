//! Reading one answer of a provider: a search page (a Bundle) or a single resource.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(rename = "resourceType")]
    resource_type: String,
    /// Set when the answer is one resource rather than a Bundle.
    id: Option<String>,
    /// What the search matched in all, when the server says.
    total: Option<u64>,
    #[serde(default)]
    link: Vec<Link>,
    #[serde(default, borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Link {
    relation: String,
    url: String,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
    search: Option<Search>,
}

#[derive(Deserialize)]
struct Search {
    mode: Option<String>,
}

/// One resource of a page.
#[derive(Debug, Clone)]
pub(crate) struct PageEntry {
    /// Its fullUrl, or `base/Type/id`.
    pub url: String,
    /// Its exact text.
    pub raw: String,
    /// Whether the server added it (`search.mode = include`) rather than matched it.
    pub included: bool,
}

/// One answer, read.
#[derive(Debug, Clone)]
pub(crate) struct PageRead {
    /// Its resources (outcomes left out).
    pub entries: Vec<PageEntry>,
    /// The next page, exactly as the server gave it.
    pub next: Option<String>,
    /// What the search matched in all, if the server said (a Bundle only).
    pub total: Option<u64>,
    /// Whether the answer was a Bundle (a search) rather than one resource (a read).
    pub bundle: bool,
}

impl PageRead {
    /// How many of its resources the search matched (not the ones it included).
    pub fn matched(&self) -> u64 {
        self.entries.iter().filter(|e| !e.included).count() as u64
    }
}

/// Read one page of search results (or a single resource from a read).
pub(crate) fn read_page(body: &[u8], base: &str) -> Result<PageRead> {
    let bad = |what: &str| Error::Network {
        reason: format!("the provider sent {what}"),
        retry_after_s: None,
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("a page that is not UTF-8"))?;
    let page: Page<'_> =
        serde_json::from_str(text).map_err(|_| bad("a page that is not FHIR JSON"))?;
    if page.resource_type != "Bundle" {
        // A read (the Patient) answers with the resource itself.
        let id = page.id.unwrap_or_default();
        let url = format!("{base}/{}/{id}", page.resource_type);
        return Ok(PageRead {
            entries: vec![PageEntry {
                url,
                raw: text.to_string(),
                included: false,
            }],
            next: None,
            total: None,
            bundle: false,
        });
    }
    let next = page
        .link
        .into_iter()
        .find(|l| l.relation == "next")
        .map(|l| l.url);
    let entries = page
        .entry
        .into_iter()
        .filter_map(|e| {
            let mode = e.search.as_ref().and_then(|s| s.mode.as_deref());
            if mode == Some("outcome") {
                return None;
            }
            let included = mode == Some("include");
            let raw = e.resource?.get().to_string();
            let url = match e.full_url {
                Some(u) => u,
                None => {
                    let v: Value = serde_json::from_str(&raw).ok()?;
                    format!(
                        "{base}/{}/{}",
                        v["resourceType"].as_str()?,
                        v["id"].as_str()?
                    )
                }
            };
            Some(PageEntry { url, raw, included })
        })
        .collect();
    Ok(PageRead {
        entries,
        next,
        total: page.total,
        bundle: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_yield_resources_next_links_and_totals() {
        let body = br#"{"resourceType":"Bundle","type":"searchset","total":7,"link":[{"relation":"self","url":"s"},{"relation":"next","url":"n"}],
          "entry":[{"fullUrl":"http://x/fhir/Condition/1","resource":{"resourceType":"Condition","id":"1","x":1.50}},
                   {"resource":{"resourceType":"OperationOutcome"},"search":{"mode":"outcome"}},
                   {"resource":{"resourceType":"Practitioner","id":"d"},"search":{"mode":"include"}},
                   {"resource":{"resourceType":"Observation","id":"2"}}]}"#;
        let page = read_page(body, "http://x/fhir").unwrap();
        assert_eq!(page.next.as_deref(), Some("n"));
        assert_eq!(page.total, Some(7));
        assert_eq!(page.entries.len(), 3);
        assert_eq!(page.matched(), 2);
        assert!(page.entries[0].raw.contains("1.50"), "kept as sent");
        assert_eq!(page.entries[2].url, "http://x/fhir/Observation/2");
        assert!(read_page(b"{\"resourceType\":\"Bundle\",\"entry\":[", "b").is_err());
        let read = read_page(br#"{"resourceType":"Patient","id":"p"}"#, "http://x").unwrap();
        assert!(!read.bundle && read.entries[0].url == "http://x/Patient/p");
    }
}
