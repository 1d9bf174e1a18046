//! Request dispatch and the reply rules of the specification.
//!
//! Requests with a reply body (the GET_* requests) always get that body and never an extra ack.
//! Every other request gets a u64 ack (0 success, 1 failure) when REPLY_ACK is negotiated and
//! the header has NEED_REPLY. A failed GET_CONFIG gets a reply with an empty payload, as the
//! specification prescribes; any other failed request with a reply body closes the connection,
//! because no valid reply exists for it.

use vhost::vhost_user::message::{FrontendReq, VhostUserProtocolFeatures};
use vm_memory::ByteValued;

use crate::error::{Error, RequestError};
use crate::message::{write_reply, Message};
use crate::{Connection, Event, VhostUserDevice};

/// Response of a successful handler.
pub(crate) enum Reply {
    /// Nothing beyond the optional ack.
    Ack,
    /// A reply payload.
    Body(Vec<u8>),
}

impl Reply {
    pub(crate) fn value<T: ByteValued>(value: T) -> Reply {
        Reply::Body(value.as_slice().to_vec())
    }
}

/// Reply rule of the specification for a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    Ack,
    Body,
    Config,
}

fn reply_kind(request: Option<FrontendReq>) -> ReplyKind {
    match request {
        Some(FrontendReq::GET_CONFIG) => ReplyKind::Config,
        Some(
            FrontendReq::GET_FEATURES
            | FrontendReq::GET_PROTOCOL_FEATURES
            | FrontendReq::GET_VRING_BASE
            | FrontendReq::GET_QUEUE_NUM
            | FrontendReq::GET_MAX_MEM_SLOTS
            | FrontendReq::GET_STATUS,
        ) => ReplyKind::Body,
        _ => ReplyKind::Ack,
    }
}

/// Returns whether the request may carry fds: the handler checks how many, or rejects the
/// request as unsupported. Unknown codes count as taking fds, so they are reported as unknown.
fn takes_fds(request: Option<FrontendReq>) -> bool {
    matches!(
        request,
        Some(
            FrontendReq::SET_MEM_TABLE
                | FrontendReq::ADD_MEM_REG
                | FrontendReq::REM_MEM_REG
                | FrontendReq::SET_VRING_KICK
                | FrontendReq::SET_VRING_CALL
                | FrontendReq::SET_VRING_ERR
                | FrontendReq::SET_BACKEND_REQ_FD
                | FrontendReq::SET_LOG_BASE
                | FrontendReq::SET_LOG_FD
                | FrontendReq::SET_INFLIGHT_FD
                | FrontendReq::GPU_SET_SOCKET
                | FrontendReq::SET_DEVICE_STATE_FD
        ) | None
    )
}

impl Connection {
    pub(crate) fn dispatch(
        &mut self,
        device: &mut impl VhostUserDevice,
        mut message: Message,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        let code = message.header.request;
        let request = FrontendReq::try_from(code).ok();
        let result = match message.header.invalid_request_flags() {
            0 if !takes_fds(request) && !message.fds.is_empty() => Err(RequestError::FdCount {
                expected: 0,
                actual: message.fds.len(),
            }),
            0 => self.route(request, code, device, &mut message, events),
            flags => Err(RequestError::InvalidFlags(flags)),
        };
        // Fds the handler did not take are closed here.
        drop(message.fds);
        let kind = reply_kind(request);
        match result {
            Ok(Reply::Body(body)) => write_reply(&self.stream, code, &body),
            Ok(Reply::Ack) => self.ack(kind, message.header.need_reply(), code, 0),
            Err(error) => self.reject(kind, message.header.need_reply(), code, error, events),
        }
    }

    fn ack(&self, kind: ReplyKind, need_reply: bool, code: u32, value: u64) -> Result<(), Error> {
        let reply_ack = self
            .protocol_features
            .contains(VhostUserProtocolFeatures::REPLY_ACK);
        if kind == ReplyKind::Ack && need_reply && reply_ack {
            return write_reply(&self.stream, code, value.as_slice());
        }
        Ok(())
    }

    fn reject(
        &mut self,
        kind: ReplyKind,
        need_reply: bool,
        code: u32,
        error: RequestError,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        if error.closes_connection() {
            return Err(Error::Incompatible {
                request: code,
                source: error,
            });
        }
        match kind {
            ReplyKind::Body => {
                return Err(Error::ReplyImpossible {
                    request: code,
                    source: error,
                })
            }
            ReplyKind::Config => write_reply(&self.stream, code, &[])?,
            ReplyKind::Ack => self.ack(kind, need_reply, code, 1)?,
        }
        events.push(Event::Rejected {
            request: code,
            error,
        });
        Ok(())
    }

    fn route(
        &mut self,
        request: Option<FrontendReq>,
        code: u32,
        device: &mut impl VhostUserDevice,
        message: &mut Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        let Some(request) = request else {
            return Err(RequestError::Unsupported(code));
        };
        match request {
            FrontendReq::GET_FEATURES => self.get_features(message),
            FrontendReq::SET_FEATURES => self.set_features(device, message),
            FrontendReq::GET_PROTOCOL_FEATURES => self.get_protocol_features(message),
            FrontendReq::SET_PROTOCOL_FEATURES => self.set_protocol_features(message),
            FrontendReq::SET_OWNER => message.expect_empty().map(|()| Reply::Ack),
            FrontendReq::RESET_OWNER => self.reset(device, message, events, None),
            FrontendReq::RESET_DEVICE => {
                let feature = Some(VhostUserProtocolFeatures::RESET_DEVICE);
                self.reset(device, message, events, feature)
            }
            FrontendReq::SET_MEM_TABLE => self.set_mem_table(message, events),
            FrontendReq::GET_MAX_MEM_SLOTS => self.get_max_mem_slots(message),
            FrontendReq::ADD_MEM_REG => self.add_mem_reg(message, events),
            FrontendReq::REM_MEM_REG => self.rem_mem_reg(message, events),
            FrontendReq::GET_QUEUE_NUM => self.get_queue_num(message),
            FrontendReq::GET_CONFIG => self.get_config(device, message),
            FrontendReq::SET_CONFIG => self.set_config(device, message),
            FrontendReq::SET_BACKEND_REQ_FD => self.set_backend_req_fd(message),
            FrontendReq::SET_STATUS => self.set_status(message, events),
            FrontendReq::GET_STATUS => self.get_status(message),
            _ => self.route_vring(request, code, message, events),
        }
    }

    fn route_vring(
        &mut self,
        request: FrontendReq,
        code: u32,
        message: &mut Message,
        events: &mut Vec<Event>,
    ) -> Result<Reply, RequestError> {
        match request {
            FrontendReq::SET_VRING_NUM => self.set_vring_num(message),
            FrontendReq::SET_VRING_ADDR => self.set_vring_addr(message),
            FrontendReq::SET_VRING_BASE => self.set_vring_base(message),
            FrontendReq::GET_VRING_BASE => self.get_vring_base(message, events),
            FrontendReq::SET_VRING_KICK => self.set_vring_kick(message, events),
            FrontendReq::SET_VRING_CALL => self.set_vring_call(message),
            FrontendReq::SET_VRING_ERR => self.set_vring_err(message),
            FrontendReq::SET_VRING_ENABLE => self.set_vring_enable(message),
            _ => Err(RequestError::Unsupported(code)),
        }
    }
}
