//! `carry-stu3`: converts FHIR STU3 resources to the FHIR R4 that Carry stores.
//!
//! England's GP record reaches a patient's app through GP Connect (Patient Facing)
//! Access Record, whose `$gpc.getstructuredrecord` answers with an STU3 Bundle (type
//! `collection`) of resources written to the CareConnect and GP Connect profiles.
//! Read as R4, such a record is quietly wrong: an STU3 allergy's `assertedDate` is no
//! R4 element, so the allergy shows as undated. This crate converts each resource to
//! R4 following HL7's STU3 to R4 maps and NHS England's CareConnect to UK Core
//! mapping:
//!
//! - [`release_of`] says whether a resource or Bundle is STU3 (by its profiles, its
//!   resource types and its elements);
//! - [`to_r4`] converts one resource, JSON in and JSON out, and says in plain words
//!   what did not carry over ([`Converted::notes`]); every converted resource carries
//!   the tag [`CONVERTED_SYSTEM`] | [`CONVERTED_CODE`] in `meta.tag`.
//!
//! The conversion is not lossless, by design: the caller keeps the original STU3 JSON
//! beside the R4 view. What R4 cannot say is noted rather than dropped in silence, and
//! a resource type with no conversion here (an `OperationOutcome` in a GP Connect
//! Bundle, say) is an error the caller can report.
//!
//! Choices worth knowing when reading the R4 view (each is documented where it is made):
//!
//! - `meta.profile`: STU3 profiles are dropped (they describe the STU3 form); the
//!   converted tag says where the resource came from instead. This is not noted.
//! - GP Connect's allergy end (`endDate`, `reasonEnded`) moves to UK Core's R4
//!   extension of the same shape, not to `lastOccurrence`, which is the date of the
//!   last reaction rather than the end of the allergy.
//! - `MedicationStatement.taken`: GP Connect sends `unk` for every medication. R4's
//!   status `unknown` would hide whether the medication is current, so the status is
//!   kept and `taken` is noted; only `n` changes the status (to `not-taken`).
//! - Where R4 requires what STU3 did not, the gap is filled visibly rather than
//!   invented: an Encounter without a `class` gets the v3 null flavour `UNK`, an
//!   Immunization without a date `occurrenceString: "unknown"`.
//! - CareConnect and GP Connect extensions are carried over under their own
//!   addresses, except where R4 has a native element (see the `extensions` module).
//!
//! The crate is pure: no I/O, no state, and the input is never changed. It covers the
//! types GP Connect returns: Patient, Practitioner, PractitionerRole, Organization,
//! Location, Encounter, List, AllergyIntolerance, Condition, Observation,
//! DiagnosticReport, Specimen, Immunization, Medication, MedicationRequest,
//! MedicationStatement, and ProcedureRequest and ReferralRequest (which become
//! ServiceRequests, and every reference to them is rewritten to match).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod clinical;
mod codes;
mod convert;
mod detect;
mod draft;
mod error;
mod extensions;
mod medication;
mod references;
mod request;
mod shape;

pub use error::Stu3Error;

/// Which FHIR release a resource or Bundle is written in, as far as its content shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Release {
    /// FHIR R4 (4.0), which Carry stores; also the answer when nothing shows otherwise.
    R4,
    /// FHIR STU3 (3.0), which GP Connect Access Record returns.
    Stu3,
}

/// Looks at a Bundle (or single resource): STU3 if any resource's `meta.profile` is an
/// STU3 profile (an address with `/STU3/` in it, as
/// `https://fhir.nhs.uk/STU3/StructureDefinition/...` and
/// `https://fhir.hl7.org.uk/STU3/...` have), or it uses a resource type only STU3 has
/// (ProcedureRequest, ReferralRequest, ...), or an element only STU3 has
/// (`AllergyIntolerance.assertedDate`, `MedicationStatement.taken`, a status written as
/// a plain code where R4 has a CodeableConcept, ...). Otherwise R4. A Bundle's entries
/// and every resource's contained resources are looked into.
pub fn release_of(value: &serde_json::Value) -> Release {
    detect::release_of(value)
}

/// The result of converting one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The resource in R4: its `id` and `meta` kept (without its STU3 profiles, and with
    /// the converted tag added), its elements converted.
    pub resource: serde_json::Value,
    /// What could not be carried over, in plain words, one note per element (each
    /// names the STU3 element, as `MedicationStatement.taken: ...`); empty when nothing
    /// was lost.
    pub notes: Vec<String>,
}

/// Converts one STU3 resource to R4, without changing the input.
///
/// A resource type with no conversion here is [`Stu3Error::Unsupported`]; input that
/// is not an STU3 resource (not a JSON object, no `resourceType`, an element of the
/// wrong JSON type, a status code STU3 does not define) is [`Stu3Error::Invalid`].
pub fn to_r4(resource: &serde_json::Value) -> Result<Converted, Stu3Error> {
    convert::to_r4(resource)
}

/// The system of the tag every converted resource carries in `meta.tag`.
pub const CONVERTED_SYSTEM: &str = "https://carry.health/fhir/CodeSystem/origin";

/// The code of the tag every converted resource carries in `meta.tag`: it was converted
/// from FHIR STU3 (the original is kept beside it).
pub const CONVERTED_CODE: &str = "converted-from-stu3";
