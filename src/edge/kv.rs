//! KV called straight on the binding: worker's get/put builders serialise their options with
//! serde-wasm-bindgen, which nothing else in the bundle needs (~5 KiB gzip with its number and
//! float formatting). Same calls, same bytes stored: `get(name, "text" | "arrayBuffer")`,
//! `put(name, ArrayBuffer, {expirationTtl})`, `delete(name)`.

use worker::js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

/// One KV namespace binding.
pub struct Kv(JsValue);

fn message(e: JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    match e.dyn_ref::<worker::js_sys::Error>() {
        Some(err) => String::from(err.message()),
        None => "KV call failed".to_string(),
    }
}

impl Kv {
    pub fn of(env: &Env, binding: &str) -> Result<Kv, String> {
        let this = Reflect::get(env, &JsValue::from_str(binding)).map_err(message)?;
        if this.is_undefined() || this.is_null() {
            return Err(format!("Binding `{binding}` is undefined."));
        }
        Ok(Kv(this))
    }

    async fn call(&self, method: &str, args: &Array) -> Result<JsValue, String> {
        let f: Function = Reflect::get(&self.0, &JsValue::from_str(method))
            .map_err(message)?
            .dyn_into()
            .map_err(|_| format!("KV has no {method}"))?;
        let promise: Promise = f.apply(&self.0, args).map_err(message)?.unchecked_into();
        JsFuture::from(promise).await.map_err(message)
    }

    /// The value as text, or None when the name is not there.
    pub async fn text(&self, name: &str) -> Result<Option<String>, String> {
        let args = Array::of2(&JsValue::from_str(name), &JsValue::from_str("text"));
        Ok(self.call("get", &args).await?.as_string())
    }

    /// The value's bytes, or None when the name is not there.
    pub async fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let args = Array::of2(&JsValue::from_str(name), &JsValue::from_str("arrayBuffer"));
        let v = self.call("get", &args).await?;
        if v.is_null() || v.is_undefined() {
            return Ok(None);
        }
        Ok(Some(Uint8Array::new(&v).to_vec()))
    }

    /// Stores `value` under `name`, expiring after `ttl_s` seconds when given.
    pub async fn put(&self, name: &str, value: &[u8], ttl_s: Option<u64>) -> Result<(), String> {
        let bytes = Uint8Array::new_with_length(value.len() as u32);
        bytes.copy_from(value);
        let buffer: ArrayBuffer = bytes.buffer();
        let options = Object::new();
        if let Some(ttl) = ttl_s {
            Reflect::set(
                &options,
                &JsValue::from_str("expirationTtl"),
                &JsValue::from_f64(ttl as f64),
            )
            .map_err(message)?;
        }
        let args = Array::of3(&JsValue::from_str(name), &buffer, &options);
        self.call("put", &args).await.map(|_| ())
    }

    pub async fn delete(&self, name: &str) -> Result<(), String> {
        let args = Array::of1(&JsValue::from_str(name));
        self.call("delete", &args).await.map(|_| ())
    }
}
