//! Windows: the child and every process it starts, in one job object
//! (learn.microsoft.com/windows/win32/procthread/job-objects), Windows' equivalent of the Unix
//! process group: `TerminateJobObject` ends them all at once, and
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` ends them when the handle closes (the `Running` is
//! dropped, or this process dies), so a cancelled export leaves no PowerShell, remote session or
//! copy behind. Processes a member starts join the job by default (no breakaway is allowed:
//! `JOB_OBJECT_LIMIT_BREAKAWAY_OK` is not set). Since Windows 8 jobs nest, so a caller that runs
//! the library inside its own job (a service host, a CI runner) does not stop this.
//!
//! The child is put in the job right after `CreateProcess` returns: a process it started in
//! that first instant would stay outside. PowerShell takes far longer than that to start
//! anything; `PROC_THREAD_ATTRIBUTE_JOB_LIST` (in the job from its first instruction) needs
//! `CommandExt::raw_attribute`, not stable in Rust yet.

use std::io;
use std::os::windows::io::RawHandle;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject,
};

/// A job object holding one child and its descendants; closing it kills them.
#[derive(Debug)]
pub(super) struct Job(HANDLE);

// SAFETY: a job handle is a kernel handle, usable from any thread.
unsafe impl Send for Job {}
// SAFETY: the calls made through a shared reference (TerminateJobObject) are thread-safe.
unsafe impl Sync for Job {}

impl Job {
    /// A new job, killing its processes when closed, holding `process` (the child's handle).
    pub fn holding(process: RawHandle) -> io::Result<Job> {
        // SAFETY: no security attributes, no name; the handle is owned by the Job below.
        let h = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        let job = Job(h);
        // SAFETY: a zeroed plain C struct is a valid value of it.
        let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: `info` lives for the call and its size is the one given.
        let ok = unsafe {
            SetInformationJobObject(
                job.0,
                JobObjectExtendedLimitInformation,
                (&raw const info).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both handles are open: the job's (ours) and the child's (its Child owns it
        // and outlives this call).
        if unsafe { AssignProcessToJobObject(job.0, process as HANDLE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(job)
    }

    /// Ends every process in the job (idempotent; a job whose processes are gone is fine).
    pub fn kill(&self) {
        // SAFETY: our own open handle. Exit code 1, as `Child::kill` gives.
        unsafe {
            TerminateJobObject(self.0, 1);
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: our own handle, closed once; KILL_ON_JOB_CLOSE ends what is left in it.
        unsafe {
            CloseHandle(self.0);
        }
    }
}
