//! What every route shares at the HTTP surface: method + path to a route, the one error type and
//! its rendering, which headers cross the relay, the duplicate-key JSON guard, request ids.
pub mod error;
pub mod headers;
pub mod ids;
pub mod json;
pub mod routes;
