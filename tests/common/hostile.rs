//! The hostile caller (tests/hostile_*.rs): every function of `CK_FUNCTION_LIST_3_0`, reached
//! through `C_GetInterface`, described once by the kinds of its arguments, so that a driver
//! can call each one with plausible arguments and then break one argument at a time (NULL
//! pointers, huge or zero lengths, invalid or stale handles).
//!
//! A call is a list of machine words; `dispatch` converts each word to the parameter's real
//! type and calls the function through its typed pointer, so no ABI trick is involved.
//! Buffers the words point to live in a [`Frame`] for the duration of the call.
//!
//! Expectations (which code is acceptable) live in the test files.

use std::any::Any;
use std::ffi::c_void;

use cryptoki::error::{Rv, RvError};
use cryptoki_sys::*;

/// What an argument is, for the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum K {
    /// A session handle.
    S,
    /// An object (key) handle.
    O,
    /// A slot ID.
    Slot,
    /// A plain value (flags, user type, mechanism type, CK_BBOOL, count of output handles).
    V,
    /// An input buffer; the next argument is its length (`L`).
    In,
    /// The length of the preceding `In`.
    L,
    /// An output buffer that may be NULL (a length query); the next argument is `OL`.
    Out,
    /// A pointer to the in/out length of the preceding `Out`.
    OL,
    /// A required output pointer (structure, handle, count, function list).
    P,
    /// A pointer that may be NULL (pReserved, pApplication, interface name or version).
    Pn,
    /// A template; the next argument is its count (`C`).
    T,
    /// The attribute count of the preceding `T`.
    C,
    /// A `CK_MECHANISM` pointer.
    M,
    /// A notification callback (always NULL).
    N,
}

macro_rules! conv {
    (N, $x:expr) => {{
        let _ = $x;
        None
    }};
    ($k:ident, $x:expr) => {
        $x as _
    };
}

macro_rules! functions {
    ($( $name:ident ( $($k:ident),* ) )*) => {
        /// Every function of the 3.0 table, in table order, with its argument kinds.
        pub const FUNCTIONS: &[(&str, &[K])] = &[ $( (stringify!($name), &[$(K::$k),*]) ),* ];

        /// Calls `name` from `list` with `w` converted to its parameter types.
        ///
        /// # Safety
        /// Every pointer word must be NULL or valid for what the function may do with it.
        pub unsafe fn dispatch(list: &CK_FUNCTION_LIST_3_0, name: &str, w: &[u64]) -> CK_RV {
            match name {
                $( stringify!($name) => {
                    let f = list.$name.expect(stringify!($name));
                    let mut it = w.iter().copied();
                    // SAFETY: the caller vouches for every pointer word (this function's
                    // contract); the words are converted to the function's own types.
                    unsafe { f($( conv!($k, it.next().expect("too few words")) ),*) }
                } )*
                other => panic!("no function {other}"),
            }
        }
    };
}

functions! {
    C_Initialize(Pn)
    C_Finalize(Pn)
    C_GetInfo(P)
    C_GetFunctionList(P)
    C_GetSlotList(V, Out, OL)
    C_GetSlotInfo(Slot, P)
    C_GetTokenInfo(Slot, P)
    C_GetMechanismList(Slot, Out, OL)
    C_GetMechanismInfo(Slot, V, P)
    C_InitToken(Slot, In, L, P)
    C_InitPIN(S, In, L)
    C_SetPIN(S, In, L, In, L)
    C_OpenSession(Slot, V, Pn, N, P)
    C_CloseSession(S)
    C_CloseAllSessions(Slot)
    C_GetSessionInfo(S, P)
    C_GetOperationState(S, Out, OL)
    C_SetOperationState(S, In, L, O, O)
    C_Login(S, V, In, L)
    C_Logout(S)
    C_CreateObject(S, T, C, P)
    C_CopyObject(S, O, T, C, P)
    C_DestroyObject(S, O)
    C_GetObjectSize(S, O, P)
    C_GetAttributeValue(S, O, T, C)
    C_SetAttributeValue(S, O, T, C)
    C_FindObjectsInit(S, T, C)
    C_FindObjects(S, P, V, P)
    C_FindObjectsFinal(S)
    C_EncryptInit(S, M, O)
    C_Encrypt(S, In, L, Out, OL)
    C_EncryptUpdate(S, In, L, Out, OL)
    C_EncryptFinal(S, Out, OL)
    C_DecryptInit(S, M, O)
    C_Decrypt(S, In, L, Out, OL)
    C_DecryptUpdate(S, In, L, Out, OL)
    C_DecryptFinal(S, Out, OL)
    C_DigestInit(S, M)
    C_Digest(S, In, L, Out, OL)
    C_DigestUpdate(S, In, L)
    C_DigestKey(S, O)
    C_DigestFinal(S, Out, OL)
    C_SignInit(S, M, O)
    C_Sign(S, In, L, Out, OL)
    C_SignUpdate(S, In, L)
    C_SignFinal(S, Out, OL)
    C_SignRecoverInit(S, M, O)
    C_SignRecover(S, In, L, Out, OL)
    C_VerifyInit(S, M, O)
    C_Verify(S, In, L, In, L)
    C_VerifyUpdate(S, In, L)
    C_VerifyFinal(S, In, L)
    C_VerifyRecoverInit(S, M, O)
    C_VerifyRecover(S, In, L, Out, OL)
    C_DigestEncryptUpdate(S, In, L, Out, OL)
    C_DecryptDigestUpdate(S, In, L, Out, OL)
    C_SignEncryptUpdate(S, In, L, Out, OL)
    C_DecryptVerifyUpdate(S, In, L, Out, OL)
    C_GenerateKey(S, M, T, C, P)
    C_GenerateKeyPair(S, M, T, C, T, C, P, P)
    C_WrapKey(S, M, O, O, Out, OL)
    C_UnwrapKey(S, M, O, In, L, T, C, P)
    C_DeriveKey(S, M, O, T, C, P)
    C_SeedRandom(S, In, L)
    C_GenerateRandom(S, In, L)
    C_GetFunctionStatus(S)
    C_CancelFunction(S)
    C_WaitForSlotEvent(V, P, Pn)
    C_GetInterfaceList(Out, OL)
    C_GetInterface(Pn, Pn, P, V)
    C_LoginUser(S, V, In, L, In, L)
    C_SessionCancel(S, V)
    C_MessageEncryptInit(S, M, O)
    C_EncryptMessage(S, In, L, In, L, In, L, Out, OL)
    C_EncryptMessageBegin(S, In, L, In, L)
    C_EncryptMessageNext(S, In, L, In, L, Out, OL, V)
    C_MessageEncryptFinal(S)
    C_MessageDecryptInit(S, M, O)
    C_DecryptMessage(S, In, L, In, L, In, L, Out, OL)
    C_DecryptMessageBegin(S, In, L, In, L)
    C_DecryptMessageNext(S, In, L, In, L, Out, OL, V)
    C_MessageDecryptFinal(S)
    C_MessageSignInit(S, M, O)
    C_SignMessage(S, In, L, In, L, Out, OL)
    C_SignMessageBegin(S, In, L)
    C_SignMessageNext(S, In, L, In, L, Out, OL)
    C_MessageSignFinal(S)
    C_MessageVerifyInit(S, M, O)
    C_VerifyMessage(S, In, L, In, L, In, L)
    C_VerifyMessageBegin(S, In, L)
    C_VerifyMessageNext(S, In, L, In, L, In, L)
    C_MessageVerifyFinal(S)
}

/// Functions that work before `C_Initialize` (PKCS#11 3.0 §5.4).
pub const WORK_UNINITIALISED: &[&str] = &[
    "C_Initialize",
    "C_GetFunctionList",
    "C_GetInterfaceList",
    "C_GetInterface",
];

/// The module's 3.0 function table, obtained through the exported `C_GetInterface`.
pub struct Api {
    _library: cryptoki_sys::Pkcs11,
    pub list: CK_FUNCTION_LIST_3_0,
}

impl Api {
    pub fn load() -> Api {
        let path = super::module_path();
        // SAFETY: loading the module under test (the loader returns the same library).
        let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
        // SAFETY: NULL name and version ask for the default interface; one output pointer.
        let rv = unsafe {
            library.C_GetInterface(std::ptr::null_mut(), std::ptr::null_mut(), &mut iface, 0)
        };
        assert_eq!(rv, CKR_OK, "C_GetInterface");
        // SAFETY: the module's interface table is static.
        let list = unsafe { (*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0 };
        // SAFETY: the default interface is 3.0 (docs/functions.md); its table is static.
        let list = unsafe { *list };
        assert_eq!((list.version.major, list.version.minor), (3, 0));
        Api {
            _library: library,
            list,
        }
    }

    /// Calls `name` with `words`.
    ///
    /// # Safety
    /// As [`dispatch`].
    pub unsafe fn call(&self, name: &str, words: &[u64]) -> CK_RV {
        // SAFETY: as this function's own contract.
        unsafe { dispatch(&self.list, name, words) }
    }

    /// Whether the module still answers (a caught panic poisons it: CKR_GENERAL_ERROR).
    pub fn info_rv(&self) -> CK_RV {
        let mut info = CK_INFO::default();
        // SAFETY: one output structure.
        unsafe { self.list.C_GetInfo.unwrap()(&mut info) }
    }
}

/// The kinds of `name`.
pub fn kinds(name: &str) -> &'static [K] {
    FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no function {name}"))
        .1
}

/// Whether `rv` is a code PKCS#11 defines (or one of kmshsm's vendor codes).
pub fn defined(rv: CK_RV) -> bool {
    const VENDOR: CK_RV = 0x8000_0000 | 0x4B4D_0000;
    match Rv::from(rv) {
        Rv::Ok => true,
        Rv::Error(RvError::UnknownErrorCode(_)) => false,
        Rv::Error(RvError::VendorDefined(v)) => (VENDOR + 1..=VENDOR + 6).contains(&v),
        Rv::Error(_) => true,
    }
}

/// A readable name for a code.
pub fn name(rv: CK_RV) -> String {
    match Rv::from(rv) {
        Rv::Ok => "CKR_OK".into(),
        Rv::Error(e) => format!("{e:?}"),
    }
}

/// A mechanism for a call: type and parameter bytes (`None`: NULL, 0).
#[derive(Clone, Debug)]
pub struct Mech {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Option<Vec<u8>>,
    /// Overrides `ulParameterLen`.
    pub len: Option<CK_ULONG>,
    /// Buffers the parameter structure points into.
    pub keep: Vec<Vec<u8>>,
}

impl Mech {
    pub fn none(ty: CK_MECHANISM_TYPE) -> Mech {
        Mech {
            ty,
            param: None,
            len: None,
            keep: Vec::new(),
        }
    }
    pub fn bytes(ty: CK_MECHANISM_TYPE, param: &[u8]) -> Mech {
        Mech {
            param: Some(param.to_vec()),
            ..Mech::none(ty)
        }
    }
    pub fn with_len(mut self, len: CK_ULONG) -> Mech {
        self.len = Some(len);
        self
    }
}

/// The bytes of a plain C structure.
pub fn struct_bytes<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: T is a plain C structure; we copy its bytes.
    unsafe { std::slice::from_raw_parts(value as *const T as *const u8, std::mem::size_of::<T>()) }
        .to_vec()
}

/// An attribute of a template: type and value bytes (`None`: pValue NULL).
pub type Attr = (CK_ATTRIBUTE_TYPE, Option<Vec<u8>>, Option<CK_ULONG>);

pub fn attr(ty: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Attr {
    (ty, Some(value.to_vec()), None)
}

pub fn attr_ulong(ty: CK_ATTRIBUTE_TYPE, value: CK_ULONG) -> Attr {
    (ty, Some(value.to_ne_bytes().to_vec()), None)
}

pub fn attr_bool(ty: CK_ATTRIBUTE_TYPE, value: bool) -> Attr {
    (ty, Some(vec![value as u8]), None)
}

/// Owner of everything the words of one call point to. Heap data never moves when the
/// frame's vectors grow, so pointers stay valid until the frame is dropped.
#[derive(Default)]
pub struct Frame {
    keep: Vec<Box<dyn Any>>,
}

impl Frame {
    /// A buffer holding `bytes` (at least one byte, so the pointer is never dangling).
    pub fn buf(&mut self, bytes: Vec<u8>) -> u64 {
        let mut b = bytes;
        if b.is_empty() {
            b.push(0);
        }
        let ptr = b.as_mut_ptr() as u64;
        self.keep.push(Box::new(b));
        ptr
    }
    /// A zeroed buffer of `n` bytes, 8-byte aligned (for structures and handle arrays).
    pub fn zeroed(&mut self, n: usize) -> u64 {
        let mut b = vec![0u64; n.div_ceil(8).max(1)];
        let ptr = b.as_mut_ptr() as u64;
        self.keep.push(Box::new(b));
        ptr
    }
    /// An output buffer of `n` bytes followed by `GUARD_BYTES` more, all filled with
    /// `GUARD`, 8-byte aligned: what a module writes shows, and so does a write past the
    /// end ([`Frame::written_past`]).
    pub fn output(&mut self, n: usize) -> u64 {
        let words = (n + GUARD_BYTES).div_ceil(8);
        let mut b = vec![u64::from_ne_bytes([GUARD; 8]); words];
        let ptr = b.as_mut_ptr() as u64;
        self.keep.push(Box::new(b));
        ptr
    }
    /// The bytes of `ptr`, an [`Frame::output`] buffer of `n` bytes, at `from..n +
    /// GUARD_BYTES` that are no longer `GUARD`: written where the module had no output.
    pub fn written_past(&self, ptr: u64, n: usize, from: usize) -> Vec<usize> {
        let buffer = self
            .keep
            .iter()
            .filter_map(|b| b.downcast_ref::<Vec<u64>>())
            .find(|b| b.as_ptr() as u64 == ptr)
            .expect("not an output buffer of this frame");
        // SAFETY: the vector holds at least n + GUARD_BYTES bytes (`output`).
        let bytes =
            unsafe { std::slice::from_raw_parts(buffer.as_ptr() as *const u8, n + GUARD_BYTES) };
        (from..n + GUARD_BYTES)
            .filter(|i| bytes[*i] != GUARD)
            .collect()
    }
    /// A CK_ULONG holding `value`.
    pub fn ulong(&mut self, value: CK_ULONG) -> u64 {
        let mut b = Box::new(value);
        let ptr = &mut *b as *mut CK_ULONG as u64;
        self.keep.push(b);
        ptr
    }
    pub fn mech(&mut self, m: &Mech) -> u64 {
        for k in &m.keep {
            self.keep.push(Box::new(k.clone()));
        }
        let (ptr, len) = match &m.param {
            Some(p) => (self.buf(p.clone()), p.len() as CK_ULONG),
            None => (0, 0),
        };
        let mut ck = Box::new(CK_MECHANISM {
            mechanism: m.ty,
            pParameter: ptr as *mut c_void,
            ulParameterLen: m.len.unwrap_or(len),
        });
        let p = &mut *ck as *mut CK_MECHANISM as u64;
        self.keep.push(ck);
        p
    }
    /// A CK_ATTRIBUTE array (never a NULL pointer, even when empty).
    pub fn template(&mut self, attrs: &[Attr]) -> u64 {
        let mut out: Vec<CK_ATTRIBUTE> = Vec::with_capacity(attrs.len().max(1));
        for (ty, value, len) in attrs {
            let (ptr, n) = match value {
                Some(v) => (self.buf(v.clone()), v.len() as CK_ULONG),
                None => (0, 0),
            };
            out.push(CK_ATTRIBUTE {
                type_: *ty,
                pValue: ptr as *mut c_void,
                ulValueLen: len.unwrap_or(n),
            });
        }
        let ptr = out.as_mut_ptr() as u64;
        self.keep.push(Box::new(out));
        ptr
    }
}

/// The plausible arguments of one function, consumed in order by kind.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub session: u64,
    pub slot: u64,
    pub objects: Vec<u64>,
    pub values: Vec<u64>,
    pub inputs: Vec<Vec<u8>>,
    pub templates: Vec<Vec<Attr>>,
    pub mech: Option<Mech>,
}

/// Capacity (bytes) of every output buffer; the advertised capacity is `OUT_CAPACITY`.
pub const OUT_BYTES: usize = 1 << 16;
/// Bytes after every output buffer that no call may write (`Frame::output`).
pub const GUARD_BYTES: usize = 64;
/// What the guard bytes (and the output bytes not written) hold.
pub const GUARD: u8 = 0xa5;
/// What an output length claims: small enough, in elements or bytes, to fit `OUT_BYTES`.
pub const OUT_CAPACITY: CK_ULONG = 256;

/// The words of `kinds` following `plan`, with the buffers in `frame`.
pub fn words(kinds: &[K], plan: &Plan, frame: &mut Frame) -> Vec<u64> {
    let mut objects = plan.objects.iter();
    let mut values = plan.values.iter();
    let mut inputs = plan.inputs.iter();
    let mut templates = plan.templates.iter();
    let mut last_len = 0u64;
    let mut out = Vec::with_capacity(kinds.len());
    for k in kinds {
        let w = match k {
            K::S => plan.session,
            K::O => *objects.next().expect("plan lacks an object"),
            K::Slot => plan.slot,
            K::V => *values.next().unwrap_or(&0),
            K::In => {
                let data = inputs.next().cloned().unwrap_or_else(|| vec![0x11; 16]);
                last_len = data.len() as u64;
                frame.buf(data)
            }
            K::L | K::C => last_len,
            K::Out => frame.output(OUT_BYTES),
            K::P => frame.zeroed(OUT_BYTES),
            K::OL => frame.ulong(OUT_CAPACITY),
            K::Pn => 0,
            K::T => {
                let t = templates.next().cloned().unwrap_or_default();
                last_len = t.len() as u64;
                frame.template(&t)
            }
            K::M => frame.mech(plan.mech.as_ref().expect("plan lacks a mechanism")),
            K::N => 0,
        };
        out.push(w);
    }
    out
}
