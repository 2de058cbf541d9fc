//! The JS side of a relayed stream, with as few JS↔wasm crossings per chunk as the streams API
//! allows. The upstream body is read with promise callbacks that store the chunk and poll the
//! client body on the spot, and the client body is a plain JS `ReadableStream` whose `pull`
//! polls it too: one upstream chunk costs one callback into wasm (plus the `pull` the enqueue
//! triggers), where `Response::from_stream` over `ByteStream` took four or five entries, a
//! task on the wasm executor and fresh promises and closures per chunk. A BYOB read takes
//! everything the upstream has queued in one wake.
//!
//! The callbacks are one pair of functions per isolate, bound to a stream's id with
//! `Function.bind`, so no per-stream `Closure` can outlive its stream or leak when workerd never
//! calls `cancel()` (toolchain.md trap 1): the registries below hold each stream's state until
//! it ends, and the watcher's end releases the client side of a stream nobody reads any more.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;
use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// A `ReadableStreamDefaultReader` or `ReadableStreamBYOBReader`.
    type Reader;
    #[wasm_bindgen(method, js_name = read)]
    fn read_next(this: &Reader) -> Promise;
    #[wasm_bindgen(method, js_name = read)]
    fn read_into(this: &Reader, view: &Uint8Array) -> Promise;
    #[wasm_bindgen(method)]
    fn cancel(this: &Reader) -> Promise;

    type Source;
    #[wasm_bindgen(method, catch, js_name = getReader)]
    fn reader_with(this: &Source, options: &JsValue) -> Result<Reader, JsValue>;
    #[wasm_bindgen(method, catch, js_name = getReader)]
    fn reader(this: &Source) -> Result<Reader, JsValue>;

    type Controller;
    #[wasm_bindgen(method, catch)]
    fn enqueue(this: &Controller, chunk: &Uint8Array) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &Controller) -> Result<(), JsValue>;

    /// A promise, for `then` with two plain functions.
    type Thenable;
    #[wasm_bindgen(method, js_name = then)]
    fn then_both(this: &Thenable, ok: &Function, err: &Function) -> JsValue;

    /// A function, for `bind` with a stream id.
    type Bindable;
    #[wasm_bindgen(method, js_name = bind)]
    fn bind_id(this: &Bindable, this_arg: &JsValue, id: u32) -> Function;

    #[wasm_bindgen(js_name = ReadableStream)]
    type JsStream;
    #[wasm_bindgen(constructor, catch, js_class = "ReadableStream")]
    fn new_stream(source: &Object, strategy: &Object) -> Result<JsStream, JsValue>;
}

/// Bytes asked of the upstream per BYOB read: what a wake can take in one go.
const READ_BYTES: u32 = 64 * 1024;
/// Bounds one wake's loop: each chunk handed over needs a fresh `pull`, so the loop rarely
/// turns more than twice; past the bound the rest is picked up from a microtask.
const MAX_CHUNKS_PER_WAKE: usize = 64;

type Item = worker::Result<Vec<u8>>;
type Body = Pin<Box<dyn Stream<Item = Item>>>;

/// What one upstream read came back with.
enum Read {
    Chunk(Vec<u8>),
    Done,
    Failed(String),
}

#[derive(Default)]
struct Slot {
    result: Option<Read>,
    pending: bool,
    waker: Option<Waker>,
    /// The BYOB buffer the last read handed back, reused by the next.
    buffer: Option<js_sys::ArrayBuffer>,
}

/// The client side of one stream: the body it polls and the controller it enqueues into.
struct Driver {
    body: RefCell<Option<Body>>,
    controller: RefCell<Option<JsValue>>,
    /// The client asked for a chunk (`pull`) and has not had it yet. Nothing is polled ahead
    /// of that: the body's end counts as delivered only when the client pulls after its tail.
    wanted: Cell<bool>,
    polling: Cell<bool>,
    /// Woken while polling: poll once more before returning.
    repoll: Cell<bool>,
    /// This stream's `pull`, to resume a wake that hit its bound.
    pull: Function,
}

thread_local! {
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
    static SLOTS: RefCell<HashMap<u32, Rc<RefCell<Slot>>>> = RefCell::new(HashMap::new());
    static DRIVERS: RefCell<HashMap<u32, Rc<Driver>>> = RefCell::new(HashMap::new());
    static CALLBACKS: Callbacks = Callbacks::new();
}

fn next_id() -> u32 {
    NEXT_ID.with(|n| {
        let id = n.get().wrapping_add(1);
        n.set(id);
        id
    })
}

/// The isolate's callbacks, created once; each stream binds them to its id.
struct Callbacks {
    read_ok: Closure<dyn FnMut(u32, JsValue)>,
    read_err: Closure<dyn FnMut(u32, JsValue)>,
    pull: Closure<dyn FnMut(u32, JsValue)>,
    cancel: Closure<dyn FnMut(u32, JsValue)>,
}

impl Callbacks {
    fn new() -> Self {
        Callbacks {
            read_ok: Closure::new(on_read),
            read_err: Closure::new(|id: u32, err: JsValue| {
                let message = err
                    .as_string()
                    .or_else(|| {
                        Reflect::get(&err, &"message".into())
                            .ok()
                            .and_then(|m| m.as_string())
                    })
                    .unwrap_or_else(|| "upstream body failed".to_string());
                settle(id, Read::Failed(message));
            }),
            pull: Closure::new(on_pull),
            cancel: Closure::new(|id: u32, _reason: JsValue| {
                // The client went away and workerd said so (it does not always): the body is
                // dropped, which marks the stream as not taken to its end.
                release(id);
            }),
        }
    }
}

fn bound(f: &Closure<dyn FnMut(u32, JsValue)>, id: u32) -> Function {
    let f: &Bindable = f.as_ref().unchecked_ref();
    f.bind_id(&JsValue::NULL, id)
}

fn on_read(id: u32, result: JsValue) {
    let done = Reflect::get(&result, &"done".into())
        .ok()
        .is_some_and(|d| d.is_truthy());
    let value = Reflect::get(&result, &"value".into()).unwrap_or(JsValue::UNDEFINED);
    let view = value.dyn_into::<Uint8Array>().ok();
    if let Some(view) = &view {
        let buffer = view.buffer();
        SLOTS.with(|s| {
            if let Some(slot) = s.borrow().get(&id) {
                slot.borrow_mut().buffer = Some(buffer);
            }
        });
    }
    match view {
        Some(view) if !done => settle(id, Read::Chunk(view.to_vec())),
        _ => settle(id, Read::Done),
    }
}

/// Stores a read's outcome and wakes whoever polls that upstream (no borrow held across it).
fn settle(id: u32, read: Read) {
    let waker = SLOTS.with(|s| {
        let slots = s.borrow();
        let slot = slots.get(&id)?;
        let mut slot = slot.borrow_mut();
        slot.pending = false;
        slot.result = Some(read);
        slot.waker.take()
    });
    if let Some(w) = waker {
        w.wake();
    }
}

/// A provider's response body, read with the isolate's callbacks. Dropping it cancels the
/// read side, which aborts the upstream fetch.
pub struct Upstream {
    id: u32,
    reader: Reader,
    byob: bool,
    slot: Rc<RefCell<Slot>>,
    ok: Function,
    err: Function,
    done: bool,
}

/// The upstream body of `resp`, or `None` when it has none.
pub fn upstream(resp: &worker::Response) -> Option<Upstream> {
    let worker::ResponseBody::Stream(stream) = resp.body() else {
        return None;
    };
    let source: &Source = stream.unchecked_ref();
    let options = Object::new();
    let _ = Reflect::set(&options, &"mode".into(), &"byob".into());
    let (reader, byob) = match source.reader_with(&options) {
        Ok(r) => (r, true),
        Err(_) => (source.reader().ok()?, false),
    };
    let id = next_id();
    let slot = Rc::new(RefCell::new(Slot::default()));
    SLOTS.with(|s| s.borrow_mut().insert(id, slot.clone()));
    let (ok, err) = CALLBACKS.with(|c| (bound(&c.read_ok, id), bound(&c.read_err, id)));
    Some(Upstream {
        id,
        reader,
        byob,
        slot,
        ok,
        err,
        done: false,
    })
}

impl Upstream {
    fn start_read(&self) {
        let promise = if self.byob {
            let buffer = self.slot.borrow_mut().buffer.take();
            let view = match buffer {
                Some(b) if b.byte_length() > 0 => Uint8Array::new(&b),
                _ => Uint8Array::new_with_length(READ_BYTES),
            };
            self.reader.read_into(&view)
        } else {
            self.reader.read_next()
        };
        let promise: &Thenable = promise.unchecked_ref();
        let _ = promise.then_both(&self.ok, &self.err);
    }
}

impl Stream for Upstream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let taken = self.slot.borrow_mut().result.take();
        match taken {
            Some(Read::Chunk(bytes)) => Poll::Ready(Some(Ok(bytes))),
            Some(Read::Done) => {
                self.done = true;
                Poll::Ready(None)
            }
            Some(Read::Failed(message)) => {
                self.done = true;
                Poll::Ready(Some(Err(worker::Error::RustError(message))))
            }
            None => {
                let start = {
                    let mut slot = self.slot.borrow_mut();
                    slot.waker = Some(cx.waker().clone());
                    !std::mem::replace(&mut slot.pending, true)
                };
                if start {
                    self.start_read();
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        SLOTS.with(|s| s.borrow_mut().remove(&self.id));
        if !self.done {
            // A read still pending settles into the removed slot and is ignored.
            let _ = self.reader.cancel();
        }
    }
}

/// Wakes a driver by id: a `Waker` must be `Send`, so it carries the id, not the driver.
struct DriveWaker(u32);

impl Wake for DriveWaker {
    fn wake(self: Arc<Self>) {
        drive(self.0);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        drive(self.0);
    }
}

fn on_pull(id: u32, controller: JsValue) {
    let Some(d) = DRIVERS.with(|m| m.borrow().get(&id).cloned()) else {
        // Released after the watcher gave up on the client; end the stream for a late reader.
        let _ = controller.unchecked_into::<Controller>().close();
        return;
    };
    d.wanted.set(true);
    drive(id);
}

/// Polls the client body while the client wants a chunk and the body has one ready.
fn drive(id: u32) {
    let Some(d) = DRIVERS.with(|m| m.borrow().get(&id).cloned()) else {
        return;
    };
    if d.polling.get() {
        // A wake or the `pull` an enqueue triggers, from inside this loop.
        d.repoll.set(true);
        return;
    }
    d.polling.set(true);
    let waker = Waker::from(Arc::new(DriveWaker(id)));
    let mut cx = Context::from_waker(&waker);
    let mut ended = false;
    let mut sent = 0;
    while sent < MAX_CHUNKS_PER_WAKE && d.wanted.get() {
        d.repoll.set(false);
        let Some(controller) = d
            .controller
            .borrow()
            .clone()
            .map(JsCast::unchecked_into::<Controller>)
        else {
            break;
        };
        let polled = match d.body.borrow_mut().as_mut() {
            Some(body) => body.as_mut().poll_next(&mut cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Pending => {
                if !d.repoll.get() {
                    break;
                }
            }
            Poll::Ready(Some(Ok(bytes))) => {
                if !bytes.is_empty() {
                    sent += 1;
                    // Cleared first: the enqueue may call `pull` at once, which sets it again.
                    d.wanted.set(false);
                    let _ = controller.enqueue(&Uint8Array::from(bytes.as_slice()));
                }
            }
            Poll::Ready(Some(Err(_)) | None) => {
                let _ = controller.close();
                ended = true;
                break;
            }
        }
    }
    d.polling.set(false);
    if ended {
        release(id);
    } else if sent >= MAX_CHUNKS_PER_WAKE && d.wanted.get() {
        if let Some(controller) = d.controller.borrow().clone() {
            let resume = Promise::resolve(&controller);
            let _ = resume
                .unchecked_ref::<Thenable>()
                .then_both(&d.pull, &d.pull);
        }
    }
}

/// Drops a stream's client side: its body (which records whether it was taken to its end)
/// and its controller.
fn release(id: u32) {
    let driver = DRIVERS.with(|m| m.borrow_mut().remove(&id));
    if let Some(d) = driver {
        let body = d.body.borrow_mut().take();
        drop(body);
        d.controller.borrow_mut().take();
    }
}

/// The JS `ReadableStream` the client reads `body` from, and `watcher` wrapped so that its end
/// also releases the body should the client have stopped reading without workerd cancelling.
pub fn respond<S, W>(
    body: S,
    watcher: W,
) -> Result<(worker::web_sys::ReadableStream, impl Future<Output = ()>), JsValue>
where
    S: Stream<Item = Item> + 'static,
    W: Future<Output = ()> + 'static,
{
    let id = next_id();
    let source = Object::new();
    let (pull, cancel) = CALLBACKS.with(|c| (bound(&c.pull, id), bound(&c.cancel, id)));
    let driver = Rc::new(Driver {
        body: RefCell::new(Some(Box::pin(body))),
        controller: RefCell::new(None),
        wanted: Cell::new(false),
        polling: Cell::new(false),
        repoll: Cell::new(false),
        pull: pull.clone(),
    });
    Reflect::set(&source, &"pull".into(), &pull)?;
    Reflect::set(&source, &"cancel".into(), &cancel)?;
    // `start` hands over the controller; a bound function of the isolate's pull would poll
    // before the driver is registered, so it is a tiny closure that only stores it.
    let stored = driver.clone();
    let start = Closure::once_into_js(move |controller: JsValue| {
        *stored.controller.borrow_mut() = Some(controller);
    });
    Reflect::set(&source, &"start".into(), &start)?;
    DRIVERS.with(|m| m.borrow_mut().insert(id, driver));
    // No chunk is queued ahead of the client's reads (see `Driver::wanted`).
    let strategy = Object::new();
    Reflect::set(&strategy, &"highWaterMark".into(), &JsValue::from(0))?;
    let stream = JsStream::new_stream(&source, &strategy)?;
    let watcher = async move {
        watcher.await;
        release(id);
    };
    Ok((stream.unchecked_into(), watcher))
}
