//! Raw PKCS#11 calls for the cases the `cryptoki` crate deliberately cannot express: a session
//! opened without CKF_SERIAL_SESSION, a CK_BBOOL of the wrong length, a find left active,
//! per-attribute lengths after a failed C_GetAttributeValue, bogus handles.
//!
//! The module is opened a second time by path; the dynamic loader hands back the same loaded
//! library, so these calls act on the same process state as the `cryptoki` context.
//! Only the exported C_GetFunctionList is used: the module exports no other C_* symbol.

use cryptoki::error::{Rv, RvError};
use cryptoki_sys::*;

/// The return code of C_GetAttributeValue and, per attribute, (reported length, bytes).
pub type AttributeReply = (Result<(), RvError>, Vec<(CK_ULONG, Vec<u8>)>);

/// A template attribute owned by the test: type and exact value bytes.
pub struct RawAttr {
    pub ty: CK_ATTRIBUTE_TYPE,
    pub value: Vec<u8>,
}

impl RawAttr {
    pub fn new(ty: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Self {
        RawAttr {
            ty,
            value: value.to_vec(),
        }
    }
    pub fn ulong(ty: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> Self {
        RawAttr {
            ty,
            value: value.to_ne_bytes().to_vec(),
        }
    }
    pub fn bool(ty: CK_ATTRIBUTE_TYPE, value: bool) -> Self {
        RawAttr {
            ty,
            value: vec![value as u8],
        }
    }
}

pub struct Raw {
    _library: cryptoki_sys::Pkcs11,
    list: CK_FUNCTION_LIST,
}

/// A PKCS#11 return code as a `Result`.
pub fn result(rv: CK_RV) -> Result<(), RvError> {
    match Rv::from(rv) {
        Rv::Ok => Ok(()),
        Rv::Error(e) => Err(e),
    }
}

/// `template` as the C structures pointing into it (alive as long as `template`).
pub fn attributes(template: &[RawAttr]) -> Vec<CK_ATTRIBUTE> {
    template
        .iter()
        .map(|a| CK_ATTRIBUTE {
            type_: a.ty,
            pValue: a.value.as_ptr() as *mut _,
            ulValueLen: a.value.len() as CK_ULONG,
        })
        .collect()
}

/// Runs `call` with a mechanism of type `mechanism` and no parameter, or NULL.
fn with_mechanism(
    mechanism: Option<CK_MECHANISM_TYPE>,
    call: impl FnOnce(*mut CK_MECHANISM) -> CK_RV,
) -> Result<(), RvError> {
    let mut mech = mechanism.map(|m| CK_MECHANISM {
        mechanism: m,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    });
    result(call(
        mech.as_mut().map_or(std::ptr::null_mut(), |m| m as *mut _),
    ))
}

impl Raw {
    pub fn load() -> Raw {
        let path = super::module_path();
        // SAFETY: loading the PKCS#11 module under test; its initialisers are what we test.
        let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList writes one pointer.
        let rv = unsafe { library.C_GetFunctionList(&mut list) };
        assert_eq!(rv, CKR_OK, "C_GetFunctionList");
        assert!(!list.is_null(), "C_GetFunctionList returned NULL");
        // SAFETY: the module keeps its function list alive while loaded; we copy it.
        let list = unsafe { *list };
        Raw {
            _library: library,
            list,
        }
    }

    pub fn initialize_null(&self) -> Result<(), RvError> {
        // SAFETY: NULL arguments are allowed by the specification.
        result(unsafe { self.list.C_Initialize.unwrap()(std::ptr::null_mut()) })
    }

    pub fn open_session(
        &self,
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
    ) -> Result<CK_SESSION_HANDLE, RvError> {
        let mut handle: CK_SESSION_HANDLE = 0;
        // SAFETY: no notification callback; one output handle.
        result(unsafe {
            self.list.C_OpenSession.unwrap()(slot, flags, std::ptr::null_mut(), None, &mut handle)
        })?;
        Ok(handle)
    }

    pub fn close_session(&self, session: CK_SESSION_HANDLE) -> Result<(), RvError> {
        // SAFETY: plain handle argument.
        result(unsafe { self.list.C_CloseSession.unwrap()(session) })
    }

    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Result<(), RvError> {
        // SAFETY: plain slot argument.
        result(unsafe { self.list.C_CloseAllSessions.unwrap()(slot) })
    }

    pub fn object_size(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
    ) -> Result<CK_ULONG, RvError> {
        let mut size: CK_ULONG = 0;
        // SAFETY: one output length.
        result(unsafe { self.list.C_GetObjectSize.unwrap()(session, object, &mut size) })?;
        Ok(size)
    }

    pub fn session_state(&self, session: CK_SESSION_HANDLE) -> Result<CK_STATE, RvError> {
        let mut info = CK_SESSION_INFO::default();
        // SAFETY: one output structure.
        result(unsafe { self.list.C_GetSessionInfo.unwrap()(session, &mut info) })?;
        Ok(info.state)
    }

    /// `C_CreateObject` with `plain` attributes and one nested template attribute
    /// `nested_type` (`CKA_DERIVE_TEMPLATE` and kin) holding `nested`: a template
    /// `cryptoki` cannot express.
    pub fn create_with_nested(
        &self,
        session: CK_SESSION_HANDLE,
        plain: &[RawAttr],
        nested_type: CK_ATTRIBUTE_TYPE,
        nested: &[RawAttr],
    ) -> Result<CK_OBJECT_HANDLE, RvError> {
        let mut inner = attributes(nested);
        let mut outer = attributes(plain);
        outer.push(CK_ATTRIBUTE {
            type_: nested_type,
            pValue: inner.as_mut_ptr().cast(),
            ulValueLen: (inner.len() * std::mem::size_of::<CK_ATTRIBUTE>()) as CK_ULONG,
        });
        let mut handle: CK_OBJECT_HANDLE = 0;
        // SAFETY: both arrays and every value they point to are alive for the call; the
        // handle is one output.
        result(unsafe {
            self.list.C_CreateObject.unwrap()(
                session,
                outer.as_mut_ptr(),
                outer.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }

    /// `C_EncryptInit` (`None`: a NULL `pMechanism`, which ends an active operation).
    pub fn encrypt_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: Option<CK_MECHANISM_TYPE>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), RvError> {
        with_mechanism(mechanism, |m| {
            // SAFETY: the mechanism (or NULL) is alive for the call.
            unsafe { self.list.C_EncryptInit.unwrap()(session, m, key) }
        })
    }

    /// `C_SignInit`, as `encrypt_init`.
    pub fn sign_init(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: Option<CK_MECHANISM_TYPE>,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), RvError> {
        with_mechanism(mechanism, |m| {
            // SAFETY: the mechanism (or NULL) is alive for the call.
            unsafe { self.list.C_SignInit.unwrap()(session, m, key) }
        })
    }

    /// `C_EncryptUpdate` into a buffer of `capacity` bytes: the answer, the length the
    /// module reported, and the bytes written.
    pub fn encrypt_update(
        &self,
        session: CK_SESSION_HANDLE,
        input: &[u8],
        capacity: usize,
    ) -> (Result<(), RvError>, usize, Vec<u8>) {
        let mut out = vec![0u8; capacity.max(1)];
        let mut len = capacity as CK_ULONG;
        // SAFETY: input and output are alive and as long as the lengths say.
        let rv = result(unsafe {
            self.list.C_EncryptUpdate.unwrap()(
                session,
                input.as_ptr() as *mut _,
                input.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            )
        });
        out.truncate(if rv.is_ok() { len as usize } else { 0 });
        (rv, len as usize, out)
    }

    /// `C_EncryptFinal` into a buffer of `capacity` bytes: the answer and the bytes.
    pub fn encrypt_final(
        &self,
        session: CK_SESSION_HANDLE,
        capacity: usize,
    ) -> (Result<(), RvError>, Vec<u8>) {
        let mut out = vec![0u8; capacity.max(1)];
        let mut len = capacity as CK_ULONG;
        // SAFETY: the output is alive and as long as the length says.
        let rv = result(unsafe {
            self.list.C_EncryptFinal.unwrap()(session, out.as_mut_ptr(), &mut len)
        });
        out.truncate(if rv.is_ok() { len as usize } else { 0 });
        (rv, out)
    }

    /// `C_CreateObject` of a template given as it goes to the module (its pointers are
    /// the caller's to keep alive).
    pub fn create_object_from(
        &self,
        session: CK_SESSION_HANDLE,
        template: &mut [CK_ATTRIBUTE],
    ) -> Result<CK_OBJECT_HANDLE, RvError> {
        let mut handle: CK_OBJECT_HANDLE = 0;
        // SAFETY: the template and what it points to are alive for the call (this
        // function's contract); the handle is one output.
        result(unsafe {
            self.list.C_CreateObject.unwrap()(
                session,
                template.as_mut_ptr(),
                template.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }

    pub fn create_object(
        &self,
        session: CK_SESSION_HANDLE,
        template: &[RawAttr],
    ) -> Result<CK_OBJECT_HANDLE, RvError> {
        let mut attrs = attributes(template);
        let mut handle: CK_OBJECT_HANDLE = 0;
        // SAFETY: the template points into `template`, alive for the call.
        result(unsafe {
            self.list.C_CreateObject.unwrap()(
                session,
                attrs.as_mut_ptr(),
                attrs.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }

    /// `C_SetAttributeValue` of `template` on `object`.
    pub fn set_attributes(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &[RawAttr],
    ) -> Result<(), RvError> {
        let mut attrs = attributes(template);
        // SAFETY: the template points into `template`, alive for the call.
        result(unsafe {
            self.list.C_SetAttributeValue.unwrap()(
                session,
                object,
                attrs.as_mut_ptr(),
                attrs.len() as CK_ULONG,
            )
        })
    }

    /// `C_CopyObject` of `object` with `template`.
    pub fn copy_object(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &[RawAttr],
    ) -> Result<CK_OBJECT_HANDLE, RvError> {
        let mut attrs = attributes(template);
        let mut handle: CK_OBJECT_HANDLE = 0;
        // SAFETY: the template points into `template`, alive for the call; one output.
        result(unsafe {
            self.list.C_CopyObject.unwrap()(
                session,
                object,
                attrs.as_mut_ptr(),
                attrs.len() as CK_ULONG,
                &mut handle,
            )
        })?;
        Ok(handle)
    }

    /// C_GetAttributeValue with a buffer of `capacity` bytes per attribute. Returns the call's
    /// return code and, per attribute, the length the module reported and the bytes written.
    pub fn get_attributes(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
        capacity: usize,
    ) -> AttributeReply {
        let mut buffers: Vec<Vec<u8>> = types.iter().map(|_| vec![0u8; capacity]).collect();
        let mut attrs: Vec<CK_ATTRIBUTE> = types
            .iter()
            .zip(buffers.iter_mut())
            .map(|(ty, buf)| CK_ATTRIBUTE {
                type_: *ty,
                pValue: if capacity == 0 {
                    std::ptr::null_mut()
                } else {
                    buf.as_mut_ptr() as *mut _
                },
                ulValueLen: capacity as CK_ULONG,
            })
            .collect();
        // SAFETY: each pValue has `capacity` writable bytes (or is NULL for a length query).
        let rv = result(unsafe {
            self.list.C_GetAttributeValue.unwrap()(
                session,
                object,
                attrs.as_mut_ptr(),
                attrs.len() as CK_ULONG,
            )
        });
        let out = attrs
            .iter()
            .zip(buffers)
            .map(|(a, buf)| {
                let n = if a.ulValueLen == CK_UNAVAILABLE_INFORMATION {
                    0
                } else {
                    (a.ulValueLen as usize).min(capacity)
                };
                (a.ulValueLen, buf[..n].to_vec())
            })
            .collect();
        (rv, out)
    }

    pub fn find_objects_init(
        &self,
        session: CK_SESSION_HANDLE,
        template: &[RawAttr],
    ) -> Result<(), RvError> {
        let mut attrs = attributes(template);
        let ptr = if attrs.is_empty() {
            std::ptr::null_mut()
        } else {
            attrs.as_mut_ptr()
        };
        // SAFETY: template alive for the call; (NULL, 0) is the empty template.
        result(unsafe {
            self.list.C_FindObjectsInit.unwrap()(session, ptr, attrs.len() as CK_ULONG)
        })
    }

    pub fn find_objects(
        &self,
        session: CK_SESSION_HANDLE,
        max: usize,
    ) -> Result<Vec<CK_OBJECT_HANDLE>, RvError> {
        let mut handles = vec![0 as CK_OBJECT_HANDLE; max.max(1)];
        let mut count: CK_ULONG = 0;
        // SAFETY: `handles` has room for `max` handles.
        result(unsafe {
            self.list.C_FindObjects.unwrap()(
                session,
                handles.as_mut_ptr(),
                max as CK_ULONG,
                &mut count,
            )
        })?;
        handles.truncate(count as usize);
        Ok(handles)
    }

    pub fn find_objects_final(&self, session: CK_SESSION_HANDLE) -> Result<(), RvError> {
        // SAFETY: plain handle argument.
        result(unsafe { self.list.C_FindObjectsFinal.unwrap()(session) })
    }

    pub fn seed_random(&self, session: CK_SESSION_HANDLE, seed: &[u8]) -> Result<(), RvError> {
        // SAFETY: input buffer alive for the call.
        result(unsafe {
            self.list.C_SeedRandom.unwrap()(
                session,
                seed.as_ptr() as *mut _,
                seed.len() as CK_ULONG,
            )
        })
    }

    pub fn generate_random(
        &self,
        session: CK_SESSION_HANDLE,
        len: usize,
    ) -> Result<Vec<u8>, RvError> {
        let mut buf = vec![0u8; len];
        let ptr = if len == 0 {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        // SAFETY: `buf` has `len` writable bytes; (NULL, 0) asks for nothing.
        result(unsafe { self.list.C_GenerateRandom.unwrap()(session, ptr, len as CK_ULONG) })?;
        Ok(buf)
    }

    pub fn wait_for_slot_event(&self, flags: CK_FLAGS) -> Result<CK_SLOT_ID, RvError> {
        let mut slot: CK_SLOT_ID = 0;
        // SAFETY: one output slot ID; pReserved must be NULL.
        result(unsafe {
            self.list.C_WaitForSlotEvent.unwrap()(flags, &mut slot, std::ptr::null_mut())
        })?;
        Ok(slot)
    }
}

/// The raw function list, initialised, and a read/write session on the initialised
/// token (the library kept loaded by the third element).
pub fn raw_session() -> (CK_FUNCTION_LIST, CK_SESSION_HANDLE, cryptoki_sys::Pkcs11) {
    // SAFETY: loading the module under test.
    let library = unsafe { cryptoki_sys::Pkcs11::new(super::module_path()) }.unwrap();
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: C_GetFunctionList writes one pointer.
    assert_eq!(unsafe { library.C_GetFunctionList(&mut list) }, CKR_OK);
    // SAFETY: the module keeps its function list alive while loaded; it is copied.
    let f = unsafe { *list };
    // SAFETY: NULL arguments are allowed.
    let rv = unsafe { f.C_Initialize.unwrap()(std::ptr::null_mut()) };
    assert_eq!(rv, CKR_OK);
    let mut slots = [0 as CK_SLOT_ID; 8];
    let mut count = slots.len() as CK_ULONG;
    // SAFETY: an array of `count` slot ids.
    let rv = unsafe { f.C_GetSlotList.unwrap()(CK_TRUE, slots.as_mut_ptr(), &mut count) };
    assert_eq!(rv, CKR_OK);
    // The initialised token: the slot whose token info says so (the free slot's does not).
    let slot = slots[..count as usize]
        .iter()
        .copied()
        .find(|slot| {
            let mut info = CK_TOKEN_INFO::default();
            // SAFETY: one output structure.
            let rv = unsafe { f.C_GetTokenInfo.unwrap()(*slot, &mut info) };
            rv == CKR_OK && info.flags & CKF_TOKEN_INITIALIZED != 0
        })
        .expect("an initialised token");
    let mut session: CK_SESSION_HANDLE = 0;
    // SAFETY: no callback; one output handle.
    let rv = unsafe {
        f.C_OpenSession.unwrap()(
            slot,
            CKF_SERIAL_SESSION | CKF_RW_SESSION,
            std::ptr::null_mut(),
            None,
            &mut session,
        )
    };
    assert_eq!(rv, CKR_OK);
    (f, session, library)
}
