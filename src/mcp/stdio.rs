//! The stdio transport: newline-delimited JSON-RPC 2.0, read and answered
//! exactly as the specification says where rmcp's own transport does not.
//!
//! rmcp (3.11) hands the server every message it can parse, and is left to
//! do so; this transport answers the rest itself, before rmcp sees them:
//! * a line that is not JSON: `-32700 Parse error`, `id: null` (rmcp drops
//!   it silently, so a client waits forever for the answer to a request it
//!   mistyped);
//! * JSON that is no JSON-RPC message: `-32600 Invalid Request` with the
//!   request's id when it has a readable one, `null` otherwise (rmcp leaves
//!   `id` out);
//! * a request for a method rmcp knows with params of the wrong shape:
//!   `-32602 Invalid params` naming what was wrong (rmcp takes it for an
//!   unknown method and answers `-32601`);
//! * a second `initialize` in a session: `-32600`, and the client keeps
//!   its name (rmcp would answer it and rename the client);
//! * a batch (a JSON array of messages): served as 2025-03-26 requires, its
//!   answers sent back as one array, when that version was negotiated;
//!   refused with `-32600` otherwise (later versions removed batches);
//! * an error rmcp sends without an id goes out with `id: null`.
//!
//! Before the client chooses a lifecycle (an `initialize`, or a request
//! carrying 2026-07-28 metadata), notifications and responses are dropped:
//! rmcp would end the session on them. Lines are capped at
//! [`MAX_LINE_BYTES`]; a longer one is discarded unread and answered with
//! `-32600`, `id: null`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, ProtocolVersion, ServerJsonRpcMessage, ServerResult};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest line read: 16 MiB, as rmcp's own transport.
pub(crate) const MAX_LINE_BYTES: usize = 16 << 20;
/// The longest error message this transport writes, in characters.
const MAX_MESSAGE: usize = 300;
/// The protocol version whose clients may send batches.
const BATCH_VERSION: &str = "2025-03-26";

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// What the reading and the writing halves share.
#[derive(Default)]
struct Session {
    /// A lifecycle was chosen: messages other than requests go to rmcp.
    decided: bool,
    /// An `initialize` was answered, with this protocol version.
    initialized: Option<String>,
    /// Batches whose answers are not all written yet.
    batches: Vec<Batch>,
}

/// A batch being answered: the ids still to answer and the answers so far.
struct Batch {
    waiting: Vec<Value>,
    answers: Vec<Value>,
}

pub(super) struct StdioTransport<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    discarding: bool,
    write: Arc<tokio::sync::Mutex<W>>,
    queue: VecDeque<ClientJsonRpcMessage>,
    session: Arc<Mutex<Session>>,
}

impl<R, W> StdioTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub(super) fn new(read: R, write: W) -> Self {
        StdioTransport {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            write: Arc::new(tokio::sync::Mutex::new(write)),
            queue: VecDeque::new(),
            session: Arc::default(),
        }
    }

    /// Read one line into `self.line`, never holding more than
    /// [`MAX_LINE_BYTES`] (cancel-safe: a partial line stays in the
    /// buffer). `Some(false)`: a line too long, dropped. `None`: end of input.
    async fn read_line(&mut self) -> Option<bool> {
        loop {
            let available = match self.read.fill_buf().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!("reading stdin failed: {e}");
                    return None;
                }
            };
            if available.is_empty() {
                return None;
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let mut outcome = None;
            if self.discarding {
                if newline.is_some() {
                    self.discarding = false;
                }
            } else if self.line.len() + take > MAX_LINE_BYTES {
                self.line.clear();
                self.discarding = newline.is_none();
                outcome = Some(false);
            } else {
                self.line.extend_from_slice(&available[..take]);
                if newline.is_some() {
                    outcome = Some(true);
                }
            }
            self.read.consume(take);
            if let Some(whole) = outcome {
                return Some(whole);
            }
        }
    }

    fn reply(&self, answer: Value) -> impl Future<Output = bool> + Send + 'static {
        let write = self.write.clone();
        async move { write_line(&write, &answer).await.is_ok() }
    }

    /// Turn one line into messages for rmcp (queued) and the answers this
    /// transport gives itself (returned, to be written).
    fn take_line(&mut self, line: &[u8]) -> Option<Value> {
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("a line that is not JSON: {e}");
                return Some(error(Value::Null, PARSE_ERROR, &format!("Parse error: {e}")));
            }
        };
        let Value::Array(items) = value else {
            return match self.message(value) {
                Ok(Some(message)) => {
                    self.queue.push_back(message);
                    None
                }
                Ok(None) => None,
                Err(answer) => Some(answer),
            };
        };
        let version = self.session.lock().unwrap().initialized.clone();
        if items.is_empty() {
            return Some(error(Value::Null, INVALID_REQUEST, "Invalid Request: an empty batch"));
        }
        if version.as_deref() != Some(BATCH_VERSION) {
            return Some(error(
                Value::Null,
                INVALID_REQUEST,
                &format!(
                    "Invalid Request: batches belong to protocol version {BATCH_VERSION}, and this session \
                     speaks {}; send one message per line",
                    version.as_deref().unwrap_or("none yet (initialize first, alone)")
                ),
            ));
        }
        let mut batch = Batch {
            waiting: Vec::new(),
            answers: Vec::new(),
        };
        for item in items {
            match self.message(item) {
                Ok(Some(message)) => {
                    if let ClientJsonRpcMessage::Request(r) = &message {
                        batch.waiting.push(serde_json::to_value(&r.id).unwrap_or(Value::Null));
                    }
                    self.queue.push_back(message);
                }
                Ok(None) => {}
                Err(answer) => batch.answers.push(answer),
            }
        }
        if batch.waiting.is_empty() {
            return (!batch.answers.is_empty()).then_some(Value::Array(batch.answers));
        }
        self.session.lock().unwrap().batches.push(batch);
        None
    }

    /// One message: for rmcp (`Ok(Some)`), to drop (`Ok(None)`: a
    /// notification rmcp does not know), or answered here (`Err`).
    fn message(&self, value: Value) -> Result<Option<ClientJsonRpcMessage>, Value> {
        let id = match value.get("id") {
            Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
            _ => Value::Null,
        };
        let method = value.get("method").and_then(Value::as_str).map(str::to_owned);
        let is_request = value.get("id").is_some() && method.is_some();
        match serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
            Ok(ClientJsonRpcMessage::Request(r)) => {
                if let ClientRequest::CustomRequest(custom) = &r.request
                    && let Some(problem) = params_problem(&custom.method, &value)
                {
                    return Err(error(
                        id,
                        INVALID_PARAMS,
                        &format!("Invalid params of {}: {problem}", custom.method),
                    ));
                }
                if matches!(r.request, ClientRequest::InitializeRequest(_))
                    && self.session.lock().unwrap().initialized.is_some()
                {
                    return Err(error(
                        id,
                        INVALID_REQUEST,
                        "Invalid Request: this session is already initialized; start a new session to \
                         initialize again",
                    ));
                }
                Ok(Some(ClientJsonRpcMessage::Request(r)))
            }
            Ok(message) => Ok(Some(message)),
            Err(e) if !is_request && method.is_some() => {
                // A notification: JSON-RPC never answers one.
                tracing::debug!("ignored a notification rmcp cannot read: {e}");
                Ok(None)
            }
            Err(e) => match method.as_deref().and_then(|m| Some((m, params_problem(m, &value)?))) {
                Some((method, problem)) if is_request => Err(error(
                    id,
                    INVALID_PARAMS,
                    &format!("Invalid params of {method}: {problem}"),
                )),
                _ => Err(error(id, INVALID_REQUEST, &format!("Invalid Request: {e}"))),
            },
        }
    }
}

/// What is wrong with the params of a request for `method`, when `method`
/// is one rmcp serves and the params do not fit it.
fn params_problem(method: &str, request: &Value) -> Option<String> {
    use rmcp::model as m;
    let request = json!({ "method": method, "params": request.get("params").cloned().unwrap_or(Value::Null) });
    fn check<T: serde::de::DeserializeOwned>(v: &Value) -> Option<String> {
        T::deserialize(v).err().map(|e| e.to_string())
    }
    match method {
        "initialize" => check::<m::InitializeRequest>(&request),
        "tools/call" => check::<m::CallToolRequest>(&request),
        "tools/list" => check::<m::ListToolsRequest>(&request),
        "resources/read" => check::<m::ReadResourceRequest>(&request),
        "resources/list" => check::<m::ListResourcesRequest>(&request),
        "resources/templates/list" => check::<m::ListResourceTemplatesRequest>(&request),

        "prompts/get" => check::<m::GetPromptRequest>(&request),
        "prompts/list" => check::<m::ListPromptsRequest>(&request),
        "completion/complete" => check::<m::CompleteRequest>(&request),
        "server/discover" => check::<m::DiscoverRequest>(&request),
        "ping" => None,
        _ => None,
    }
    .map(|problem| {
        if request["params"].is_null() {
            format!("params are missing ({problem})")
        } else {
            problem
        }
    })
}

/// A JSON-RPC error answer; the message is cut to [`MAX_MESSAGE`] characters.
fn error(id: Value, code: i64, message: &str) -> Value {
    let message = match message.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    };
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

async fn write_line<W: AsyncWrite + Unpin>(write: &tokio::sync::Mutex<W>, value: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut w = write.lock().await;
    w.write_all(&bytes).await?;
    w.flush().await
}

impl<R, W> Transport<RoleServer> for StdioTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn name() -> std::borrow::Cow<'static, str> {
        "stdio".into()
    }

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        let session = self.session.clone();
        async move {
            let mut value = serde_json::to_value(&item).map_err(std::io::Error::other)?;
            let answer_id = match &item {
                ServerJsonRpcMessage::Response(r) => Some(serde_json::to_value(&r.id).unwrap_or(Value::Null)),
                ServerJsonRpcMessage::Error(e) => Some(serde_json::to_value(&e.id).unwrap_or(Value::Null)),
                _ => None,
            };
            if let (ServerJsonRpcMessage::Error(_), Some(object)) = (&item, value.as_object_mut()) {
                object.entry("id").or_insert(Value::Null);
            }
            let batch_done = {
                let mut session = session.lock().unwrap();
                if let ServerJsonRpcMessage::Response(r) = &item
                    && let ServerResult::InitializeResult(init) = &r.result
                {
                    session.decided = true;
                    session.initialized = Some(init.protocol_version.to_string());
                }
                match answer_id {
                    Some(id) => match session.batches.iter().position(|b| b.waiting.contains(&id)) {
                        Some(at) => {
                            let batch = &mut session.batches[at];
                            batch.waiting.retain(|w| *w != id);
                            batch.answers.push(value.take());
                            if batch.waiting.is_empty() {
                                Some(Value::Array(session.batches.remove(at).answers))
                            } else {
                                return Ok(());
                            }
                        }
                        None => None,
                    },
                    None => None,
                }
            };
            write_line(&write, batch_done.as_ref().unwrap_or(&value)).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            while let Some(message) = self.queue.pop_front() {
                let mut session = self.session.lock().unwrap();
                if session.decided {
                    return Some(message);
                }
                match &message {
                    ClientJsonRpcMessage::Request(r) => {
                        let request = &r.request;
                        let inline_lifecycle = !matches!(
                            request,
                            ClientRequest::PingRequest(_)
                                | ClientRequest::DiscoverRequest(_)
                                | ClientRequest::InitializeRequest(_)
                        ) && request
                            .get_meta()
                            .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                            .is_empty();
                        if inline_lifecycle {
                            session.decided = true;
                        }
                        return Some(message);
                    }
                    _ => tracing::warn!("ignored a message that is not a request before the MCP handshake"),
                }
            }
            match self.read_line().await? {
                false => {
                    tracing::warn!("discarded a line longer than {MAX_LINE_BYTES} bytes");
                    let answer = error(
                        Value::Null,
                        INVALID_REQUEST,
                        &format!("Invalid Request: a message longer than {MAX_LINE_BYTES} bytes"),
                    );
                    if !self.reply(answer).await {
                        return None;
                    }
                }
                true => {
                    let mut line = std::mem::take(&mut self.line);
                    while matches!(line.last(), Some(b'\n' | b'\r')) {
                        line.pop();
                    }
                    let answer = if line.iter().all(u8::is_ascii_whitespace) {
                        None
                    } else {
                        self.take_line(&line)
                    };
                    line.clear();
                    self.line = line;
                    if let Some(answer) = answer
                        && !self.reply(answer).await
                    {
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.write.lock().await.shutdown().await
    }
}
