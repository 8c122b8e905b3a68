//! `openapi.yaml` is the contract: every route we serve is in it, and every
//! response any test receives is checked against it (see `TestApp::send`).

use reqwest::header::HeaderMap;
use serde_json::Value;
use warrant::routes::ROUTES;

use crate::helpers::spawn_app;

pub struct OpenApi {
    spec: Value,
}

impl OpenApi {
    pub fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml");
        let spec: Value = serde_yaml_ng::from_str(&text).expect("openapi.yaml parses");
        assert_eq!(spec["openapi"], "3.1.0");
        Self { spec }
    }

    fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        self.spec["paths"].get(path)?.get(method.to_lowercase())
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                self.resolve(
                    self.spec
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("dangling {reference}")),
                )
            }
            None => value,
        }
    }

    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        body: &Value,
    ) {
        let context = format!("{method} {path} -> {status}");
        // A 405 answers a method the path does not have: it is documented on
        // the path's own operations.
        let operation = self
            .operation(method, path)
            .or_else(|| {
                let item = self.spec["paths"].get(path)?.as_object()?;
                item.values()
                    .find(|op| status == 405 && op["responses"].get("405").is_some())
            })
            .unwrap_or_else(|| panic!("{context}: operation not in openapi.yaml"));
        let response = operation["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .unwrap_or_else(|| panic!("{context}: status not documented in openapi.yaml"));

        if let Some(documented) = response.get("headers").and_then(Value::as_object) {
            for (name, header) in documented {
                let header = self.resolve(header);
                let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
                if header["required"] == true {
                    assert!(value.is_some(), "{context}: header {name} missing");
                }
                if let (Some(value), Some(expected)) = (value, header["schema"].get("const")) {
                    assert_eq!(Some(value), expected.as_str(), "{context}: header {name}");
                }
            }
        }

        match response.get("content").and_then(Value::as_object) {
            None => assert!(body.is_null(), "{context}: undocumented body {body}"),
            Some(content) => {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let essence = content_type.split(';').next().unwrap_or_default().trim();
                let media = content.get(essence).unwrap_or_else(|| {
                    panic!("{context}: content type {content_type:?} not documented")
                });
                let mut errors = Vec::new();
                self.validate(&media["schema"], body, "$", &mut errors);
                assert!(
                    errors.is_empty(),
                    "{context}: body does not match openapi.yaml: {errors:?}\n{body:#}"
                );
            }
        }
    }

    /// The subset of JSON Schema that openapi.yaml uses.
    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(expected) = schema.get("const")
            && value != expected
        {
            errors.push(format!("{at}: expected {expected}, got {value}"));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            errors.push(format!("{at}: {value} not one of {options:?}"));
        }
        let type_ok = match schema.get("type").and_then(Value::as_str) {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some(other) => panic!("schema type {other} not supported by this checker"),
        };
        if !type_ok {
            errors.push(format!("{at}: expected {}, got {value}", schema["type"]));
            return;
        }
        let minimum = schema.get("minimum").and_then(Value::as_i64);
        if let (Some(min), Some(n)) = (minimum, value.as_i64())
            && n < min
        {
            errors.push(format!("{at}: {n} < {min}"));
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = required.as_str().unwrap_or_default();
                if !object.contains_key(name) {
                    errors.push(format!("{at}: missing {name}"));
                }
            }
            for (name, field) in object {
                match properties.and_then(|p| p.get(name)) {
                    Some(field_schema) => {
                        self.validate(field_schema, field, &format!("{at}.{name}"), errors)
                    }
                    None if schema["additionalProperties"] == false => {
                        errors.push(format!("{at}: unexpected property {name}"));
                    }
                    None => {}
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{i}]"), errors);
            }
        }
    }

    fn documented_operations(&self) -> Vec<(String, String)> {
        let mut operations = Vec::new();
        for (path, item) in self.spec["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
        operations.sort();
        operations
    }
}

#[test]
fn every_served_route_is_documented_and_nothing_else_is() {
    let spec = OpenApi::load();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.sort();
    assert_eq!(spec.documented_operations(), served);
}

#[tokio::test]
async fn every_listed_route_is_live_on_the_server() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (method, path) in ROUTES {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let status = http
            .request(method.clone(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap()
            .status();
        assert_ne!(status, 404, "{method} {path} is listed but not served");
        assert_ne!(
            status, 405,
            "{method} {path} is listed but not served for {method}"
        );
    }
}

#[test]
fn the_checker_rejects_bodies_that_break_the_schema() {
    let spec = OpenApi::load();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/OAuthError" });
    let mut errors = Vec::new();
    spec.validate(
        &schema,
        &serde_json::json!({ "error": "nope" }),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    errors.clear();
    spec.validate(
        &schema,
        &serde_json::json!({ "error": "invalid_scope", "error_description": "x", "extra": 1 }),
        "$",
        &mut errors,
    );
    assert_eq!(errors, vec!["$: unexpected property extra"]);
}

#[tokio::test]
async fn undeclared_methods_are_405_with_allow() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (method, path) in ROUTES {
        let other = if *method == "GET" {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let response = http
            .request(other.clone(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{other} {path}");
        // A GET resource also answers HEAD (RFC 9110 §9.3.2).
        let allowed = if *method == "GET" {
            "GET, HEAD"
        } else {
            method
        };
        assert_eq!(
            response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok()),
            Some(allowed),
            "{other} {path}"
        );
    }
}

#[tokio::test]
async fn head_answers_like_get_without_the_body() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "GET") {
        let url = format!("{}{path}", app.address);
        let get = http.get(&url).send().await.unwrap();
        let head = http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{method} {path}");
        for name in ["content-type", "cache-control"] {
            assert_eq!(
                head.headers().get(name),
                get.headers().get(name),
                "{path} {name}"
            );
        }
        let get_body = get.bytes().await.unwrap();
        if *path != "/metrics" && *path != "/readyz" {
            // Documents served from memory: the length of the GET body.
            assert_eq!(
                head.headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok()),
                Some(get_body.len().to_string().as_str()),
                "{path}"
            );
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
}
