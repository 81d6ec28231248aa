//! The converter's error type. Like the rest of Carry's errors, a reason names
//! resource types, elements and JSON types, never the content of a record.

/// Why a resource could not be converted from STU3 to R4.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stu3Error {
    /// The resource type has no conversion here (an `OperationOutcome` in a GP Connect
    /// Bundle, say). The caller should report it, not drop it.
    #[error("no conversion from STU3 {resource_type} to R4: this resource type is not covered")]
    Unsupported {
        /// The STU3 resource type, as the input gave it.
        resource_type: String,
    },
    /// The input is not a well-formed STU3 resource: it is not a JSON object, has no
    /// `resourceType`, or an element the conversion reads has the wrong JSON type or a
    /// code STU3 does not define.
    #[error("invalid STU3 {resource_type}: {reason}")]
    Invalid {
        /// The STU3 resource type (`resource` when the input did not say).
        resource_type: String,
        /// What is wrong, and where: an element's name and JSON type, never its value.
        reason: String,
    },
}

/// The result of a step of the conversion.
pub(crate) type Result<T> = std::result::Result<T, Stu3Error>;

/// The name of a JSON value's type, for error reasons (never the value itself).
pub(crate) fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::Stu3Error;

    #[test]
    fn messages_name_the_type_and_the_reason() {
        let unsupported = Stu3Error::Unsupported {
            resource_type: "OperationOutcome".into(),
        };
        assert_eq!(
            unsupported.to_string(),
            "no conversion from STU3 OperationOutcome to R4: this resource type is not covered"
        );
        let invalid = Stu3Error::Invalid {
            resource_type: "Condition".into(),
            reason: "assertedDate: expected a string, found a number".into(),
        };
        assert_eq!(
            invalid.to_string(),
            "invalid STU3 Condition: assertedDate: expected a string, found a number"
        );
    }
}
