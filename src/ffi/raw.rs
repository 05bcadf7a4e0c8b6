//! All raw-pointer work of the crate: the one module allowed `unsafe`.
//!
//! Every function here turns a caller's pointer and length into a safe Rust value, or a
//! Rust value into the caller's buffer, following PKCS#11 3.0 §5.2:
//! - input `(NULL, 0)` is empty, `(NULL, n > 0)` is `CKR_ARGUMENTS_BAD`;
//! - output buffers follow the length-query rule: a NULL buffer returns the needed size
//!   with `CKR_OK`, a short one returns the size with `CKR_BUFFER_TOO_SMALL`;
//! - structures are read and written unaligned, since callers owe us no alignment.
//!
//! Soundness rests on the caller honouring the PKCS#11 contract (pointers valid for the
//! lengths they state); nothing else here trusts the caller. Lengths are capped so that
//! a lying length cannot make the module allocate without bound.
//!
//! So every function that reads or writes through a caller's pointer is an `unsafe fn`
//! whose `# Safety` section says what its caller must guarantee; the entry functions
//! (`ffi/entry`) pass on the guarantee the PKCS#11 caller gave for the call. A slice or
//! reference made here lives no longer than the call that lent its memory.

use std::ffi::{c_void, CStr};
use std::path::PathBuf;
use std::ptr;

use cryptoki_sys::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::AttrType;
use crate::mechanism::params::Iv;
use crate::object::attr::{RawAttribute, RawValue};
use crate::object::Read;

mod mechanism;
pub(super) use mechanism::{read_derived_keys, read_mechanism};

/// A length or count as the C ABI's `CK_ULONG`: exact where `CK_ULONG` is as wide as
/// `usize` (the LP64 targets kmshsm is built for); beyond it, which cannot happen there,
/// it saturates to `CK_UNAVAILABLE_INFORMATION` rather than wrapping to a wrong length.
pub(super) fn ulong_len(n: usize) -> CK_ULONG {
    CK_ULONG::try_from(n).unwrap_or(CK_UNAVAILABLE_INFORMATION)
}
/// Largest input buffer accepted, so a lying length cannot exhaust memory.
pub(super) const MAX_INPUT_LEN: usize = 1 << 30;
/// Largest template accepted.
pub(super) const MAX_TEMPLATE_LEN: usize = 4096;
/// Longest configuration path accepted through `pReserved`.
const MAX_PATH_LEN: usize = 4096;

fn len_of(n: CK_ULONG) -> Result<usize> {
    match usize::try_from(n) {
        Ok(n) if n <= MAX_INPUT_LEN => Ok(n),
        _ => Err(Error::ArgumentsBad("length too large")),
    }
}

/// The `n` bytes at `ptr`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `n` bytes, and those bytes are not written by
/// anyone for the lifetime `'a` the caller chooses (in practice: the current PKCS#11
/// call, whose caller lends the buffer for its duration, §5.2).
pub(super) unsafe fn in_bytes<'a>(ptr: *const u8, n: CK_ULONG) -> Result<&'a [u8]> {
    let n = len_of(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL buffer with non-zero length"));
    }
    // SAFETY: `ptr` is not NULL, so by this function's contract it is valid for `n`
    // bytes left unwritten for `'a`; `n` <= MAX_INPUT_LEN < isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// Exactly `N` bytes at `ptr` (for fixed fields such as the 32-byte token label).
///
/// # Safety
/// `ptr` is NULL or valid for reads of `N` bytes.
pub(super) unsafe fn in_array<const N: usize>(ptr: *const u8) -> Result<[u8; N]> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL fixed-size buffer"));
    }
    // SAFETY: not NULL, so valid for N bytes (this function's contract);
    // read_unaligned needs no alignment.
    Ok(unsafe { ptr::read_unaligned(ptr.cast::<[u8; N]>()) })
}

/// A copy of the structure at `ptr`, or `None` for NULL.
///
/// # Safety
/// `ptr` is NULL or valid for reads of a `T` (any alignment), holding a valid `T`.
pub(super) unsafe fn read_struct<T: Copy>(ptr: *const T) -> Option<T> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: not NULL, so it points to a readable, valid T (this function's
        // contract); read_unaligned needs no alignment.
        Some(unsafe { ptr::read_unaligned(ptr) })
    }
}

/// Writes `value` to the caller's `*ptr`; NULL is `CKR_ARGUMENTS_BAD`.
///
/// # Safety
/// `ptr` is NULL or valid for writes of a `T` (any alignment), and nothing else reads or
/// writes that memory during the call.
pub(super) unsafe fn write<T>(ptr: *mut T, value: T) -> Result<()> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL output pointer"));
    }
    // SAFETY: not NULL, so writable for a T (this function's contract);
    // write_unaligned needs no alignment.
    unsafe { ptr::write_unaligned(ptr, value) };
    Ok(())
}

/// Copies `items` into the caller's array under the length-query rule.
/// `count` is in and out: capacity on entry, needed or written count on exit.
///
/// # Safety
/// `count` is NULL or valid for reads and writes of a `CK_ULONG`; `buf` is NULL or valid
/// for writes of as many `T`s as `*count` says on entry. Neither is touched by anyone
/// else during the call.
pub(super) unsafe fn out_array<T: Copy>(
    buf: *mut T,
    count: *mut CK_ULONG,
    items: &[T],
) -> Result<()> {
    // SAFETY: `count` is NULL or a readable CK_ULONG (this function's contract).
    let capacity =
        unsafe { read_struct(count) }.ok_or(Error::ArgumentsBad("NULL length pointer"))?;
    let needed = ulong_len(items.len());
    // SAFETY: `count` is NULL or a writable CK_ULONG (this function's contract).
    unsafe { write(count, needed) }?;
    if buf.is_null() {
        return Ok(());
    }
    if capacity < needed {
        return Err(Error::BufferTooSmall);
    }
    // SAFETY: `buf` is not NULL, so writable for `capacity` >= `needed` elements (this
    // function's contract); copying as bytes needs no alignment of `buf`.
    unsafe {
        ptr::copy_nonoverlapping(
            items.as_ptr().cast::<u8>(),
            buf.cast::<u8>(),
            std::mem::size_of_val(items),
        )
    };
    Ok(())
}

/// Copies `text` into a fixed blank-padded field (CK_INFO and friends).
pub(super) fn padded<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let bytes = text.as_bytes();
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

fn nested_types(ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        ty,
        CKA_WRAP_TEMPLATE | CKA_UNWRAP_TEMPLATE | CKA_DERIVE_TEMPLATE
    )
}

/// The number of attributes in a caller's array of `count`, checked: not too many, and
/// none behind a NULL pointer.
fn template_len(ptr: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<usize> {
    let n = usize::try_from(count)
        .ok()
        .filter(|n| *n <= MAX_TEMPLATE_LEN)
        .ok_or(Error::ArgumentsBad("template too long"))?;
    if n != 0 && ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL template with non-zero count"));
    }
    Ok(n)
}

/// The caller's array of `count` attributes, each copied out as it is reached. Read
/// unaligned: a nested template is a `pValue`, a byte pointer the caller owes no
/// alignment.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `count` `CK_ATTRIBUTE`s (at any alignment), not
/// written by anyone else during the call; the iterator is used within the call.
unsafe fn template_entries(
    ptr: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<impl Iterator<Item = CK_ATTRIBUTE>> {
    let n = template_len(ptr, count)?;
    Ok((0..n)
        // SAFETY: not NULL when n > 0 (`template_len`), so valid for `count` entries
        // during the call, which the iterator does not outlive (this function's
        // contract); read_unaligned needs no alignment.
        .map(move |i| unsafe { ptr::read_unaligned(ptr.add(i)) }))
}

/// # Safety
/// As `read_template`.
unsafe fn read_attributes(
    ptr: *const CK_ATTRIBUTE,
    count: CK_ULONG,
    depth: u8,
    budget: &mut TemplateBudget,
) -> Result<Vec<RawAttribute>> {
    let mut out = Vec::new();
    // SAFETY: the template array is valid for the call (this function's contract), and
    // the slice does not outlive it.
    for a in unsafe { template_entries(ptr, count) }? {
        let value = if nested_types(a.type_) && depth == 0 {
            let size = ulong_len(std::mem::size_of::<CK_ATTRIBUTE>());
            if a.ulValueLen % size != 0 {
                return Err(Error::AttributeValueInvalid);
            }
            // SAFETY: a nested template's value is itself such an array (this function's
            // contract covers every value of the template).
            RawValue::Nested(unsafe {
                read_attributes(
                    a.pValue.cast::<CK_ATTRIBUTE>(),
                    a.ulValueLen / size,
                    1,
                    budget,
                )
            }?)
        } else {
            if a.pValue.is_null() && a.ulValueLen != 0 {
                return Err(Error::AttributeValueInvalid);
            }
            // SAFETY: each value is NULL or readable for its length (this function's
            // contract); the bytes are copied before the call ends.
            let bytes = unsafe { in_bytes(a.pValue.cast::<u8>(), a.ulValueLen) }?;
            // Counted before the copy: values that all point at one large buffer must
            // not make the module copy it once per attribute.
            budget.take_bytes(bytes.len())?;
            RawValue::Bytes(Zeroizing::new(bytes.to_vec()))
        };
        budget.take_entry()?;
        out.push(RawAttribute {
            ty: AttrType::from_raw(a.type_),
            value,
        });
    }
    Ok(out)
}

/// A caller's template (for create, copy, set, find, generate): types and copied values.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `count` `CK_ATTRIBUTE`s, and each one's
/// `pValue` is NULL or valid for reads of `ulValueLen` bytes (for the nested template
/// types, of `ulValueLen / size_of::<CK_ATTRIBUTE>()` attributes of this same kind),
/// none of it written by anyone else during the call.
pub(super) unsafe fn read_template(
    ptr: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<Vec<RawAttribute>> {
    let mut budget = TemplateBudget::per_call();
    // SAFETY: this function's contract is read_template_within's.
    unsafe { read_template_within(ptr, count, &mut budget) }
}

/// What one call's templates may copy, all templates together (`read_template_within`):
/// at most [`MAX_INPUT_LEN`] bytes of values, however many attributes point at one
/// buffer, and at most [`TEMPLATE_ENTRIES_PER_CALL`] attributes, nested ones included,
/// however many nested templates point at one array (review 24a: 4,096 nested templates
/// sharing one array of 4,096 empty values made 16.8 million attributes of 192 KiB, and
/// the process aborted out of memory).
#[derive(Debug)]
pub(super) struct TemplateBudget {
    bytes: usize,
    entries: usize,
}

/// The most attributes one call's templates may hold, nested ones included: sixteen
/// templates of the longest length.
pub(super) const TEMPLATE_ENTRIES_PER_CALL: usize = 16 * MAX_TEMPLATE_LEN;

impl TemplateBudget {
    pub(super) fn per_call() -> TemplateBudget {
        TemplateBudget {
            bytes: MAX_INPUT_LEN,
            entries: TEMPLATE_ENTRIES_PER_CALL,
        }
    }

    fn take_bytes(&mut self, n: usize) -> Result<()> {
        self.bytes = self
            .bytes
            .checked_sub(n)
            .ok_or(Error::ArgumentsBad("template values too large in total"))?;
        Ok(())
    }

    fn take_entry(&mut self) -> Result<()> {
        self.entries = self
            .entries
            .checked_sub(1)
            .ok_or(Error::ArgumentsBad("too many template attributes in total"))?;
        Ok(())
    }
}

/// `read_template` for one of several templates of a call, which together may copy what
/// `budget` allows (`TemplateBudget::per_call` for the call): `budget` is what they
/// leave.
///
/// # Safety
/// As `read_template`.
pub(super) unsafe fn read_template_within(
    ptr: *const CK_ATTRIBUTE,
    count: CK_ULONG,
    budget: &mut TemplateBudget,
) -> Result<Vec<RawAttribute>> {
    // SAFETY: this function's contract is read_attributes'.
    unsafe { read_attributes(ptr, count, 0, budget) }
}

/// How one attribute of `C_GetAttributeValue` turned out (§5.7, the five cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filled {
    Ok,
    Sensitive,
    Absent,
    TooSmall,
}

/// Fills the value at `p`/`len` with `bytes`: NULL asks for the length.
///
/// # Safety
/// `a.pValue` is NULL or valid for writes of `a.ulValueLen` bytes, not aliased during
/// the call.
unsafe fn fill_value(a: &mut CK_ATTRIBUTE, bytes: &[u8]) -> Filled {
    let needed = ulong_len(bytes.len());
    if a.pValue.is_null() {
        a.ulValueLen = needed;
        return Filled::Ok;
    }
    if a.ulValueLen < needed {
        a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return Filled::TooSmall;
    }
    // SAFETY: pValue is not NULL, so writable for ulValueLen (>= needed) bytes (this
    // function's contract).
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), a.pValue.cast::<u8>(), bytes.len()) };
    a.ulValueLen = needed;
    Filled::Ok
}

/// The template of `C_GetAttributeValue`, filled in place: each entry read and written
/// back unaligned (a nested template is a `pValue`, which the caller owes no alignment;
/// the array itself is read the same way).
pub(super) struct OutTemplate<'a> {
    ptr: *mut CK_ATTRIBUTE,
    len: usize,
    _lent: std::marker::PhantomData<&'a mut [CK_ATTRIBUTE]>,
}

impl<'a> OutTemplate<'a> {
    /// # Safety
    /// `ptr` is NULL or valid for reads and writes of `count` `CK_ATTRIBUTE`s (at any
    /// alignment), and each one's `pValue` is NULL or valid for writes of `ulValueLen`
    /// bytes (for the nested template types, of that many bytes of `CK_ATTRIBUTE`s whose
    /// own `pValue`s are likewise NULL or writable for their lengths), all of it used by
    /// nothing else for the lifetime `'a` the caller chooses (the current call). `fill`
    /// relies on it.
    pub(super) unsafe fn new(ptr: *mut CK_ATTRIBUTE, count: CK_ULONG) -> Result<OutTemplate<'a>> {
        Ok(OutTemplate {
            ptr,
            len: template_len(ptr, count)?,
            _lent: std::marker::PhantomData,
        })
    }

    /// Entry `i` (< `len`), copied out.
    fn entry(&self, i: usize) -> CK_ATTRIBUTE {
        debug_assert!(i < self.len);
        // SAFETY: i < len, so within the array the caller lent for `'a` (the contract of
        // `new`); read_unaligned needs no alignment.
        unsafe { ptr::read_unaligned(self.ptr.add(i)) }
    }

    pub(super) fn types(&self) -> Vec<AttrType> {
        (0..self.len)
            .map(|i| AttrType::from_raw(self.entry(i).type_))
            .collect()
    }

    /// Records one attribute's outcome in the caller's template.
    pub(super) fn fill(&mut self, i: usize, read: &Read) -> Filled {
        if i >= self.len {
            return Filled::Absent;
        }
        let mut a = self.entry(i);
        // SAFETY: every pValue of the template is NULL or writable for its length, and
        // a nested one for its entries and theirs (the contract of `new`).
        let filled = unsafe { fill_entry(&mut a, read) };
        // SAFETY: as `entry`; the array is the caller's to be written (contract of `new`).
        unsafe { ptr::write_unaligned(self.ptr.add(i), a) };
        filled
    }
}

/// Fills one attribute of `C_GetAttributeValue` (a copy, written back by the caller).
///
/// # Safety
/// `a.pValue` is NULL or writable for `a.ulValueLen` bytes; for `Read::Template`, those
/// bytes hold `CK_ATTRIBUTE`s (at any alignment) whose `pValue`s are NULL or writable for
/// their lengths; nothing else uses any of it during the call.
unsafe fn fill_entry(a: &mut CK_ATTRIBUTE, read: &Read) -> Filled {
    match read {
        // SAFETY: pValue NULL or writable for its length (this function's contract).
        Read::Value(bytes) => unsafe { fill_value(a, bytes) },
        Read::Sensitive => {
            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            Filled::Sensitive
        }
        Read::Absent => {
            a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
            Filled::Absent
        }
        Read::Template(list) => {
            let size = std::mem::size_of::<CK_ATTRIBUTE>();
            let needed = ulong_len(list.len().saturating_mul(size));
            if a.pValue.is_null() {
                a.ulValueLen = needed;
                return Filled::Ok;
            }
            if a.ulValueLen < needed {
                a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                return Filled::TooSmall;
            }
            let inner_ptr = a.pValue.cast::<CK_ATTRIBUTE>();
            let mut worst = Filled::Ok;
            for (j, (ty, bytes)) in list.iter().enumerate() {
                // SAFETY: the caller supplied room for `list.len()` CK_ATTRIBUTEs
                // (ulValueLen >= needed, this function's contract), at any alignment:
                // read and written unaligned.
                let mut inner = unsafe { ptr::read_unaligned(inner_ptr.add(j)) };
                inner.type_ = ty.raw();
                // SAFETY: a nested attribute's pValue is NULL or writable for its length
                // (this function's contract).
                if unsafe { fill_value(&mut inner, bytes) } == Filled::TooSmall {
                    worst = Filled::TooSmall;
                }
                // SAFETY: as the read above.
                unsafe { ptr::write_unaligned(inner_ptr.add(j), inner) };
            }
            a.ulValueLen = needed;
            worst
        }
    }
}

/// The `C_Initialize` arguments, checked for the all-or-none rule of the callbacks.
pub(super) struct InitArgs {
    pub flags: CK_FLAGS,
    pub callbacks: bool,
    pub config_path: Option<PathBuf>,
}

/// # Safety
/// `ptr` is NULL or valid for reads of a `CK_C_INITIALIZE_ARGS` (its `pReserved` need not
/// be valid: it is read through the kernel, see `c_path`).
pub(super) unsafe fn read_init_args(ptr: *const c_void) -> Result<InitArgs> {
    // SAFETY: NULL or a readable CK_C_INITIALIZE_ARGS (this function's contract).
    let Some(args) = (unsafe { read_struct(ptr.cast::<CK_C_INITIALIZE_ARGS>()) }) else {
        return Ok(InitArgs {
            flags: 0,
            callbacks: false,
            config_path: None,
        });
    };
    let given = [
        args.CreateMutex.is_some(),
        args.DestroyMutex.is_some(),
        args.LockMutex.is_some(),
        args.UnlockMutex.is_some(),
    ];
    let callbacks = given.iter().all(|g| *g);
    if !callbacks && given.iter().any(|g| *g) {
        return Err(Error::ArgumentsBad(
            "mutex callbacks must be all given or none",
        ));
    }
    Ok(InitArgs {
        flags: args.flags,
        callbacks,
        config_path: c_path(args.pReserved.cast::<u8>())?,
    })
}

/// `pReserved` as a configuration path, or `None` for NULL.
///
/// PKCS#11 reserves `pReserved` (it must be NULL); kmshsm reads a NUL-terminated path
/// there (docs/configuration.md). Since a caller may pass anything, the pointer is never
/// dereferenced here: `os::own_memory` has the kernel copy the string, so an address
/// below 64 KiB, unreadable memory, or no NUL within 4 KiB is `CKR_ARGUMENTS_BAD`, not a
/// crash. Readable bytes up to a NUL are taken as the path; an empty string as none.
fn c_path(ptr: *const u8) -> Result<Option<PathBuf>> {
    use crate::os::own_memory::{self, Unreadable};
    use std::os::unix::ffi::OsStrExt;
    if ptr.is_null() {
        return Ok(None);
    }
    let bytes = own_memory::c_string(ptr as usize, MAX_PATH_LEN).map_err(|e| {
        Error::ArgumentsBad(match e {
            Unreadable::LowAddress => "pReserved is not NULL and not a pointer",
            Unreadable::Fault => "pReserved points to unreadable memory",
            Unreadable::Unterminated => "pReserved is not a NUL-terminated path (max 4 KiB)",
            Unreadable::Unavailable => "pReserved cannot be read safely on this system",
        })
    })?;
    if bytes.is_empty() {
        // p11-kit passes "" for a module option `x-init-reserved:` left empty.
        return Ok(None);
    }
    Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))))
}

/// A NUL-terminated interface name for `C_GetInterface`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string readable up to its NUL, left
/// unwritten for the lifetime `'a` the caller chooses (the current call).
pub(super) unsafe fn c_name<'a>(ptr: *const u8) -> Result<Option<&'a [u8]>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: not NULL, so a NUL-terminated string valid for `'a` (this function's
    // contract).
    Ok(Some(unsafe { CStr::from_ptr(ptr.cast()) }.to_bytes()))
}

/// The interface table of `C_GetInterfaceList`: a static holding raw pointers to other
/// statics (interface names and function lists). Not generic, so that nothing else can be
/// declared shareable through it.
pub(crate) struct InterfaceTable(pub [CK_INTERFACE; 2]);

// SAFETY: the table is an immutable static whose pointers point at other immutable
// statics (NUL-terminated names, function lists); sharing it between threads reads only.
unsafe impl Sync for InterfaceTable {}

/// Writes `bytes` into a buffer inside a mechanism parameter that the parameter says holds
/// `room` bytes (a message IV or tag written back); NULL or too little room is
/// `CKR_MECHANISM_PARAM_INVALID`.
///
/// # Safety
/// `ptr` is NULL or valid for writes of `room` bytes, not aliased during the call.
pub(super) unsafe fn write_param_bytes(ptr: *mut u8, room: usize, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if ptr.is_null() || room < bytes.len() {
        return Err(Error::MechanismParamInvalid);
    }
    // SAFETY: not NULL, so writable for `room` (>= bytes.len()) bytes (this function's
    // contract).
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
    Ok(())
}

/// Lends the caller's `n`-byte output buffer to `f` (for `C_GenerateRandom`).
///
/// # Safety
/// `ptr` is NULL or valid for writes of `n` bytes, used by nothing else during the call.
pub(super) unsafe fn fill_bytes(
    ptr: *mut u8,
    n: CK_ULONG,
    f: impl FnOnce(&mut [u8]) -> Result<()>,
) -> Result<()> {
    let n = len_of(n)?;
    if n == 0 {
        return Ok(());
    }
    if ptr.is_null() {
        return Err(Error::ArgumentsBad("NULL buffer with non-zero length"));
    }
    // SAFETY: not NULL, so writable and unshared for `n` bytes during the call (this
    // function's contract); `f` cannot keep the slice beyond it.
    f(unsafe { std::slice::from_raw_parts_mut(ptr, n) })
}

/// A structure-valued mechanism parameter: exactly `size_of::<T>()` bytes, read unaligned.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes; `T` is a C structure for which any
/// bytes are a valid value (the `CK_*` parameter structures: integers and pointers).
pub(super) unsafe fn param_struct<T: Copy>(ptr: *const c_void, len: CK_ULONG) -> Result<T> {
    if ptr.is_null() || usize::try_from(len).ok() != Some(std::mem::size_of::<T>()) {
        return Err(Error::MechanismParamInvalid);
    }
    // SAFETY: not NULL and readable for `len` == size_of::<T>() bytes, which make a valid
    // T (this function's contract).
    match unsafe { read_struct(ptr.cast::<T>()) } {
        Some(value) => Ok(value),
        None => Err(Error::MechanismParamInvalid),
    }
}

/// Bytes inside a mechanism parameter; any pointer problem is a parameter problem.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes during the call.
pub(super) unsafe fn param_bytes(ptr: *const c_void, len: CK_ULONG) -> Result<Vec<u8>> {
    // SAFETY: this function's contract; the bytes are copied before it returns.
    unsafe { in_bytes(ptr.cast::<u8>(), len) }
        .map(<[u8]>::to_vec)
        .map_err(|_| Error::MechanismParamInvalid)
}

/// `param_bytes` as an [`Iv`] (inline up to 16 bytes: no allocation).
///
/// # Safety
/// As `param_bytes`.
pub(super) unsafe fn param_iv(ptr: *const c_void, len: CK_ULONG) -> Result<Iv> {
    // SAFETY: this function's contract; the bytes are copied before it returns.
    unsafe { in_bytes(ptr.cast::<u8>(), len) }
        .map(Iv::new)
        .map_err(|_| Error::MechanismParamInvalid)
}

/// The caller's output buffer for a cryptographic result, under the length-query rule.
/// `capacity` is `None` for a NULL buffer (a length query).
pub(super) struct OutBuf {
    buf: *mut u8,
    len: *mut CK_ULONG,
    pub capacity: Option<usize>,
}

impl OutBuf {
    /// # Safety
    /// `len` is NULL or valid for reads and writes of a `CK_ULONG`, and `buf` is NULL or
    /// valid for writes of as many bytes as `*len` says on entry, both used by nothing
    /// else for as long as the `OutBuf` lives (the current call). `put` relies on it.
    pub(super) unsafe fn new(buf: *mut u8, len: *mut CK_ULONG) -> Result<OutBuf> {
        // SAFETY: NULL or a readable CK_ULONG (this function's contract).
        let Some(given) = (unsafe { read_struct(len) }) else {
            return Err(Error::ArgumentsBad("NULL length pointer"));
        };
        let capacity = if buf.is_null() {
            None
        } else {
            Some(usize::try_from(given).unwrap_or(usize::MAX))
        };
        Ok(OutBuf { buf, len, capacity })
    }

    /// The caller's buffer as a slice of exactly `len` bytes, for a step that writes its
    /// `len` bytes of output there itself (`Cipher::one_shot_into`). `None` for a length
    /// query, a buffer said to hold fewer bytes, or a buffer that would share any byte
    /// with `input`: PKCS#11 lets a caller encrypt in place, and a slice of the output
    /// must not alias the input's. Outputs of every size are written this way: a 64-byte
    /// AES-GCM encryption took 4% less time than copied from a vector of the module's
    /// (docs/performance.md, "Eighth pass"; the fifth pass had measured the opposite, on
    /// a build without LTO, and written only inputs from 1 KiB directly).
    pub(super) fn direct(&mut self, input: &[u8], len: usize) -> Option<&mut [u8]> {
        if self.capacity? < len {
            return None;
        }
        let out_start = self.buf as usize;
        let in_start = input.as_ptr() as usize;
        let disjoint = out_start
            .checked_add(len)
            .is_some_and(|end| end <= in_start)
            || in_start.saturating_add(input.len()) <= out_start;
        if !disjoint {
            return None;
        }
        // SAFETY: `buf` is not NULL (`capacity` is Some) and writable for `capacity` >=
        // `len` bytes during the call, used by nothing else (the contract of
        // `OutBuf::new`), and shares no byte with `input` (checked above). The slice
        // borrows `self` mutably, so `put` cannot write while it lives.
        Some(unsafe { std::slice::from_raw_parts_mut(self.buf, len) })
    }

    /// Writes what a step produced, and turns a short buffer into `BUFFER_TOO_SMALL`.
    pub(super) fn put(&self, out: crate::operation::Output) -> Result<()> {
        use crate::operation::Output;
        // SAFETY (every `write` below): `self.len` is not NULL (checked by `new`) and
        // writable while `self` lives (the contract of `OutBuf::new`).
        match out {
            // SAFETY: see above.
            Output::Len(n) => unsafe { write(self.len, ulong_len(n)) },
            Output::Written(n) => {
                // Written through `direct`, which never hands out more than `capacity`.
                if self.capacity.is_none_or(|c| n > c) {
                    return Err(Error::Internal("output larger than the caller's buffer"));
                }
                // SAFETY: see above.
                unsafe { write(self.len, ulong_len(n)) }
            }
            Output::TooSmall(n) => {
                // SAFETY: see above.
                unsafe { write(self.len, ulong_len(n)) }?;
                Err(Error::BufferTooSmall)
            }
            Output::Data(mut bytes) => {
                // The steps return data only when it fits (`operation::produce`); checked
                // here all the same, since the copy below depends on it.
                if !bytes.is_empty() && self.capacity.is_none_or(|c| bytes.len() > c) {
                    return Err(Error::Internal("output larger than the caller's buffer"));
                }
                if !bytes.is_empty() {
                    // SAFETY: `buf` is not NULL (`capacity` is Some) and holds `capacity`
                    // >= bytes.len() writable bytes (checked above; the contract of
                    // `OutBuf::new`).
                    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.buf, bytes.len()) };
                }
                let written = bytes.len();
                // Emptied first, the buffer is wiped in one bulk write on drop (zeroize
                // wipes a vector's elements one byte at a time, its spare capacity in bulk).
                bytes.clear();
                // SAFETY: see above.
                unsafe { write(self.len, ulong_len(written)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `OutBuf::direct` hands out for `len` bytes of output, for an input of
    /// `input_len` bytes at `input_at` and an output buffer at `output_at` said to hold
    /// `claimed` bytes, all inside one buffer: the slice's offset and length, or `None`.
    fn direct(
        input_at: usize,
        input_len: usize,
        output_at: Option<usize>,
        claimed: CK_ULONG,
        len: usize,
    ) -> Option<(usize, usize)> {
        let mut buf = vec![0u8; 16 * 1024];
        let base = buf.as_mut_ptr();
        let mut given = claimed;
        // SAFETY: every case below keeps the input and `len` bytes of output inside
        // `buf`, which outlives both the slice and the OutBuf.
        let (input, mut out) = unsafe {
            let output = output_at.map_or(std::ptr::null_mut(), |at| base.add(at));
            (
                std::slice::from_raw_parts(base.add(input_at), input_len),
                OutBuf::new(output, &mut given).ok()?,
            )
        };
        out.direct(input, len)
            .map(|s| (s.as_ptr() as usize - base as usize, s.len()))
    }

    #[test]
    fn the_direct_output_is_exactly_the_output_and_never_shares_a_byte_with_the_input() {
        // Adjacent, either side: exactly the bytes asked for, whatever the claim.
        assert_eq!(direct(0, 2048, Some(2048), 8192, 2064), Some((2048, 2064)));
        assert_eq!(direct(4096, 2048, Some(0), 4096, 2064), Some((0, 2064)));
        assert_eq!(
            direct(0, 2048, Some(2048), CK_ULONG::MAX, 2064),
            Some((2048, 2064))
        );
        // A buffer said to hold less than the output.
        assert_eq!(direct(0, 2048, Some(2048), 2063, 2064), None);
        // Sharing one byte, or all of them (in place): copied instead.
        assert_eq!(direct(0, 2048, Some(2047), 4096, 2064), None);
        assert_eq!(direct(2048, 2048, Some(0), 4096, 2049), None);
        assert_eq!(direct(1024, 2048, Some(1024), 4096, 2064), None);
        // A length query.
        assert_eq!(direct(0, 2048, None, 4096, 2064), None);
        // A small input is written directly too.
        assert_eq!(direct(0, 64, Some(64), 4096, 80), Some((64, 80)));
    }
}
