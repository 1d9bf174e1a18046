//! Guest memory built from the frontend's memory regions, with translation from frontend
//! (user) virtual addresses to guest physical addresses.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use vm_memory::mmap::MmapRegionError;

use crate::fault::FaultRange;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// One region as the frontend describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionSpec {
    pub(crate) guest_phys_addr: u64,
    pub(crate) size: u64,
    pub(crate) user_addr: u64,
    pub(crate) mmap_offset: u64,
}

/// Failure to map a memory region or to change the memory table.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// A region has size zero.
    #[error("memory region at guest address {0:#x} has size 0")]
    ZeroSize(u64),
    /// A region's end overflows a 64-bit address or the host's address space.
    #[error("memory region at guest address {guest_phys_addr:#x} of size {size:#x} overflows")]
    Overflow {
        /// Guest physical address of the region.
        guest_phys_addr: u64,
        /// Size of the region.
        size: u64,
    },
    /// The region reaches past the end of its backing file.
    #[error(
        "memory region at file offset {offset:#x} of size {size:#x} reaches past the \
         {file_size:#x}-byte backing file"
    )]
    PastEndOfFile {
        /// Offset into the file.
        offset: u64,
        /// Size of the region.
        size: u64,
        /// Size of the file.
        file_size: u64,
    },
    /// Reading the backing file's size failed.
    #[error("reading the size of the memory region's backing file failed")]
    Stat(#[source] std::io::Error),
    /// `mmap` failed.
    #[error("mapping the memory region at guest address {guest_phys_addr:#x} failed")]
    Mmap {
        /// Guest physical address of the region.
        guest_phys_addr: u64,
        /// The mapping error.
        #[source]
        source: MmapRegionError,
    },
    /// Two regions overlap in guest physical or in frontend user addresses.
    #[error("memory regions overlap at {kind} address {address:#x}")]
    Overlap {
        /// "guest physical" or "user".
        kind: &'static str,
        /// Start of the second region.
        address: u64,
    },
    /// A removal named no mapped region.
    #[error("no memory region at guest address {guest_phys_addr:#x} of size {size:#x}")]
    NotFound {
        /// Guest physical address named by the frontend.
        guest_phys_addr: u64,
        /// Size named by the frontend.
        size: u64,
    },
    /// The table would exceed the slot limit.
    #[error("memory table would hold {count} regions; the maximum is {max}")]
    TooManyRegions {
        /// Requested count.
        count: usize,
        /// Maximum count.
        max: usize,
    },
}

#[derive(Debug, Clone)]
struct MappedRegion {
    spec: RegionSpec,
    region: Arc<GuestRegionMmap<()>>,
    /// Registration with the SIGBUS handler, for as long as any copy of the region lives.
    _fault_range: Arc<FaultRange>,
}

/// The mapped regions and the guest memory object built from them.
#[derive(Debug, Default)]
pub(crate) struct MemoryMap {
    regions: Vec<MappedRegion>,
    guest: Option<GuestMemoryMmap<()>>,
}

impl MemoryMap {
    pub(crate) fn guest(&self) -> Option<&GuestMemoryMmap<()>> {
        self.guest.as_ref()
    }

    /// Replaces the whole table. On failure the old table stays in place.
    pub(crate) fn replace(
        &mut self,
        specs: &[RegionSpec],
        fds: Vec<OwnedFd>,
        max: usize,
    ) -> Result<(), MemoryError> {
        check_count(specs.len(), max)?;
        let mut regions = Vec::with_capacity(specs.len());
        for (spec, fd) in specs.iter().zip(fds) {
            regions.push(map_region(*spec, fd)?);
        }
        self.install(regions)
    }

    /// Adds one region.
    pub(crate) fn add(
        &mut self,
        spec: RegionSpec,
        fd: OwnedFd,
        max: usize,
    ) -> Result<(), MemoryError> {
        check_count(self.regions.len() + 1, max)?;
        let mut regions = self.regions.clone();
        regions.push(map_region(spec, fd)?);
        self.install(regions)
    }

    /// Removes the region with the same guest address, user address and size.
    pub(crate) fn remove(&mut self, spec: RegionSpec) -> Result<(), MemoryError> {
        let position = self.regions.iter().position(|mapped| {
            mapped.spec.guest_phys_addr == spec.guest_phys_addr
                && mapped.spec.user_addr == spec.user_addr
                && mapped.spec.size == spec.size
        });
        let Some(position) = position else {
            return Err(MemoryError::NotFound {
                guest_phys_addr: spec.guest_phys_addr,
                size: spec.size,
            });
        };
        let mut regions = self.regions.clone();
        regions.remove(position);
        self.install(regions)
    }

    /// Translates a frontend user address to a guest physical address.
    pub(crate) fn translate(&self, user_addr: u64) -> Option<GuestAddress> {
        self.regions.iter().find_map(|mapped| {
            let offset = user_addr.checked_sub(mapped.spec.user_addr)?;
            (offset < mapped.spec.size).then(|| GuestAddress(mapped.spec.guest_phys_addr + offset))
        })
    }

    fn install(&mut self, mut regions: Vec<MappedRegion>) -> Result<(), MemoryError> {
        check_user_overlap(&mut regions)?;
        regions.sort_by_key(|mapped| mapped.spec.guest_phys_addr);
        let guest = if regions.is_empty() {
            None
        } else {
            let arcs = regions
                .iter()
                .map(|mapped| Arc::clone(&mapped.region))
                .collect();
            let memory =
                GuestMemoryMmap::from_arc_regions(arcs).map_err(|_| MemoryError::Overlap {
                    kind: "guest physical",
                    address: first_guest_overlap(&regions),
                })?;
            Some(memory)
        };
        self.regions = regions;
        self.guest = guest;
        Ok(())
    }
}

fn check_count(count: usize, max: usize) -> Result<(), MemoryError> {
    if count > max {
        return Err(MemoryError::TooManyRegions { count, max });
    }
    Ok(())
}

fn check_user_overlap(regions: &mut [MappedRegion]) -> Result<(), MemoryError> {
    regions.sort_by_key(|mapped| mapped.spec.user_addr);
    for pair in regions.windows(2) {
        if pair[0].spec.user_addr + pair[0].spec.size > pair[1].spec.user_addr {
            return Err(MemoryError::Overlap {
                kind: "user",
                address: pair[1].spec.user_addr,
            });
        }
    }
    Ok(())
}

/// Returns the start of the first region that overlaps its predecessor; `regions` is sorted
/// by guest physical address.
fn first_guest_overlap(regions: &[MappedRegion]) -> u64 {
    regions
        .windows(2)
        .find(|pair| {
            pair[0].spec.guest_phys_addr + pair[0].spec.size > pair[1].spec.guest_phys_addr
        })
        .map_or(0, |pair| pair[1].spec.guest_phys_addr)
}

fn map_region(spec: RegionSpec, fd: OwnedFd) -> Result<MappedRegion, MemoryError> {
    check_spec(&spec)?;
    let file = File::from(fd);
    check_file_size(&file, &spec)?;
    let mmap_error = |source| MemoryError::Mmap {
        guest_phys_addr: spec.guest_phys_addr,
        source,
    };
    let mapping =
        MmapRegion::<()>::from_file(FileOffset::new(file, spec.mmap_offset), spec.size as usize)
            .map_err(mmap_error)?;
    let region = GuestRegionMmap::new(mapping, GuestAddress(spec.guest_phys_addr)).ok_or(
        MemoryError::Overflow {
            guest_phys_addr: spec.guest_phys_addr,
            size: spec.size,
        },
    )?;
    let fault_range = FaultRange::register(region.as_ptr(), region.size());
    Ok(MappedRegion {
        spec,
        region: Arc::new(region),
        _fault_range: Arc::new(fault_range),
    })
}

fn check_spec(spec: &RegionSpec) -> Result<(), MemoryError> {
    if spec.size == 0 {
        return Err(MemoryError::ZeroSize(spec.guest_phys_addr));
    }
    let fits = spec.guest_phys_addr.checked_add(spec.size).is_some()
        && spec.user_addr.checked_add(spec.size).is_some()
        && spec.mmap_offset.checked_add(spec.size).is_some()
        && usize::try_from(spec.size).is_ok()
        && i64::try_from(spec.mmap_offset).is_ok();
    if !fits {
        return Err(MemoryError::Overflow {
            guest_phys_addr: spec.guest_phys_addr,
            size: spec.size,
        });
    }
    Ok(())
}

/// Rejects a regular file (memfd, tmpfs or disk file) shorter than the region, because touching
/// a mapped page past its end raises SIGBUS. A file truncated later is the fault handler's job
/// (see the `fault` module).
fn check_file_size(file: &File, spec: &RegionSpec) -> Result<(), MemoryError> {
    let metadata = file.metadata().map_err(MemoryError::Stat)?;
    if !metadata.is_file() {
        return Ok(());
    }
    if spec.mmap_offset + spec.size > metadata.len() {
        return Err(MemoryError::PastEndOfFile {
            offset: spec.mmap_offset,
            size: spec.size,
            file_size: metadata.len(),
        });
    }
    Ok(())
}
