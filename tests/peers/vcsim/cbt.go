// Changed block tracking for the vcsim peer (issue 35): VirtualMachine.QueryChangedDiskAreas,
// which vcsim lacks, added with the extension pattern (Registry.Handler), answered from the
// writes a test makes between two snapshots; changeIds on the snapshots' disk backings;
// flat disks (`-flat`: `disk-N.vmdk` descriptor + `disk-N-flat.vmdk` data, as a VMFS
// datastore keeps a thick disk) read through vcsim's /folder with ranged GETs, counted; and
// control endpoints a test writes and resizes the disks with.
//
// The contract held, from the vSphere API reference (VirtualMachine.queryChangedDiskAreas) and
// govmomi's vim25 types: the call takes the VM, a snapshot of it, the disk's device key, a
// start offset and a changeId; it answers one DiskChangeInfo (startOffset, length, the changed
// areas inside it) that may cover only part of the disk (the client calls again from
// startOffset+length). Refused as vCenter refuses: CBT off on the VM or no changeId on the
// snapshot's disk (FileFault, the disk's file), a changeId that is not "*" or "<uuid>/<n>"
// of this disk's tracking (InvalidArgument changeId), a device key that is no disk of the
// snapshot (InvalidArgument deviceKey), a start offset beyond the disk (InvalidArgument
// startOffset), a snapshot of another VM (InvalidArgument snapshot).
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// One disk's tracking: the epoch (the uuid part of its changeIds, new each time CBT is
// turned on), the sequence number the next snapshot gets, and the writes with the sequence
// number current when they were made.
type tracked struct {
	epoch  string
	seq    int
	writes []write
}

type write struct {
	start, end int64
	seq        int
}

type cbtState struct {
	mu sync.Mutex
	// By device key of the fixture VM's disks; nil while CBT is off.
	disks map[int32]*tracked
	// The fixture VM, its disks' flat files (by disk index) and device keys.
	vm    *simulator.VirtualMachine
	flats []string
	keys  []int32
}

var (
	cbt       cbtState
	cbtWindow = 64 << 20 // set by -cbt-window-mib
)

func newEpoch() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	parts := make([]string, 16)
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts[:8], " ") + "-" + strings.Join(parts[8:], " ")
}

// disksOf returns the VirtualDisk devices of a device list.
func disksOf(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, d := range object.VirtualDeviceList(devices).SelectByType((*types.VirtualDisk)(nil)) {
		out = append(out, d.(*types.VirtualDisk))
	}
	return out
}

// copyDevices gives the VM its own copy of its device list, disks and their backings copied,
// so a snapshot (whose config shares the VM's list) keeps what it saw. `edit` changes the
// copy of each disk.
func copyDevices(vm *simulator.VirtualMachine, edit func(*types.VirtualDisk)) {
	var out []types.BaseVirtualDevice
	for _, d := range vm.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok {
			c := *disk
			if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				bc := *b
				c.Backing = &bc
			}
			edit(&c)
			out = append(out, &c)
			continue
		}
		out = append(out, d)
	}
	vm.Config.Hardware.Device = out
}

// cbtVM wraps the fixture VM: QueryChangedDiskAreas, and ReconfigVM_Task's
// changeTrackingEnabled (vcsim keeps the flag; this starts or ends the tracking).
type cbtVM struct {
	*simulator.VirtualMachine
}

func (vm *cbtVM) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	defer ctx.Session.Remove(ctx, vm.Self)
	r := vm.VirtualMachine.ReconfigVMTask(ctx, req)
	if r.Fault() == nil && req.Spec.ChangeTrackingEnabled != nil {
		on := *req.Spec.ChangeTrackingEnabled
		st.mu.Lock()
		st.CbtReconfigs = append(st.CbtReconfigs, on)
		st.mu.Unlock()
		if cbt.vm != nil && vm.Self == cbt.vm.Self {
			cbt.mu.Lock()
			switch {
			case on && cbt.disks == nil:
				cbt.disks = map[int32]*tracked{}
				for _, k := range cbt.keys {
					cbt.disks[k] = &tracked{epoch: newEpoch(), seq: 1}
				}
			case !on:
				cbt.disks = nil
			}
			cbt.mu.Unlock()
		}
	}
	return r
}

// stampSnapshot runs before vcsim's CreateSnapshot_Task copies the VM's config into the new
// snapshot: each tracked disk's backing gets the changeId of this point, and later writes a
// higher sequence number.
func stampSnapshot(vm *simulator.VirtualMachine) {
	if cbt.vm == nil || vm.Self != cbt.vm.Self {
		return
	}
	cbt.mu.Lock()
	defer cbt.mu.Unlock()
	copyDevices(vm, func(d *types.VirtualDisk) {
		b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			return
		}
		t := cbt.disks[d.Key]
		if t == nil {
			b.ChangeId = ""
			return
		}
		b.ChangeId = fmt.Sprintf("%s/%d", t.epoch, t.seq)
	})
	for _, t := range cbt.disks {
		t.seq++
	}
}

func invalidArg(name string) soap.HasFault {
	return &methods.QueryChangedDiskAreasBody{Fault_: simulator.Fault(
		"A specified parameter was not correct: "+name, &types.InvalidArgument{InvalidProperty: name})}
}

func (vm *cbtVM) QueryChangedDiskAreas(ctx *simulator.Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	defer ctx.Session.Remove(ctx, vm.Self)
	st.mu.Lock()
	st.CbtQueries++
	st.mu.Unlock()
	devices := vm.Config.Hardware.Device
	if req.Snapshot != nil {
		s, ok := ctx.Map.Get(*req.Snapshot).(*simulator.VirtualMachineSnapshot)
		if !ok {
			return &methods.QueryChangedDiskAreasBody{Fault_: simulator.Fault("", &types.ManagedObjectNotFound{Obj: *req.Snapshot})}
		}
		if s.Vm != vm.Self {
			return invalidArg("snapshot")
		}
		devices = s.Config.Hardware.Device
	} else if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		// "using the current snapshot will only work for virtual machines that are powered off"
		return &methods.QueryChangedDiskAreasBody{Fault_: simulator.Fault("", &types.InvalidPowerState{
			ExistingState: vm.Runtime.PowerState, RequestedState: types.VirtualMachinePowerStatePoweredOff})}
	}
	var disk *types.VirtualDisk
	for _, d := range disksOf(devices) {
		if d.Key == req.DeviceKey {
			disk = d
		}
	}
	if disk == nil {
		return invalidArg("deviceKey")
	}
	b, _ := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	fileFault := func() soap.HasFault {
		name := ""
		if b != nil {
			name = b.FileName
		}
		return &methods.QueryChangedDiskAreasBody{Fault_: simulator.Fault(
			"Error caused by file "+name, &types.FileFault{File: name})}
	}
	on := vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	if !on || b == nil || b.ChangeId == "" {
		return fileFault()
	}
	if req.StartOffset < 0 || req.StartOffset > disk.CapacityInBytes {
		return invalidArg("startOffset")
	}
	cbt.mu.Lock()
	defer cbt.mu.Unlock()
	t := cbt.disks[disk.Key]
	if t == nil {
		return fileFault()
	}
	epoch, at, _ := strings.Cut(b.ChangeId, "/")
	upto, _ := strconv.Atoi(at)
	if epoch != t.epoch {
		// The snapshot's tracking was reset since: its changeIds are of another epoch.
		return fileFault()
	}
	var since int
	all := req.ChangeId == "*"
	if !all {
		e, n, ok := strings.Cut(req.ChangeId, "/")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || e != t.epoch || v > upto {
			return invalidArg("changeId")
		}
		since = v
	}
	start := req.StartOffset
	end := min(disk.CapacityInBytes, start+int64(cbtWindow))
	var areas [][2]int64
	if all {
		areas = append(areas, [2]int64{start, end})
	} else {
		for _, w := range t.writes {
			if w.seq > since && w.seq <= upto {
				a, z := max(w.start, start), min(w.end, end)
				if a < z {
					areas = append(areas, [2]int64{a, z})
				}
			}
		}
	}
	sort.Slice(areas, func(i, j int) bool { return areas[i][0] < areas[j][0] })
	var out []types.DiskChangeExtent
	for _, a := range areas {
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length >= a[0] {
			last := &out[n-1]
			last.Length = max(last.Start+last.Length, a[1]) - last.Start
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: a[0], Length: a[1] - a[0]})
	}
	return &methods.QueryChangedDiskAreasBody{Res: &types.QueryChangedDiskAreasResponse{
		Returnval: types.DiskChangeInfo{StartOffset: start, Length: end - start, ChangedArea: out}}}
}

// diskIndex reads ?disk=N of a control request.
func diskIndex(r *http.Request) (int, error) {
	i, err := strconv.Atoi(r.URL.Query().Get("disk"))
	if err != nil || i < 0 || i >= len(cbt.flats) {
		return 0, fmt.Errorf("disk must be 0..%d", len(cbt.flats)-1)
	}
	return i, nil
}

// hsWrite: POST /hs-write?disk=N&offset=O, the body written into disk N at O (as the guest
// would), tracked when CBT is on.
func hsWrite(w http.ResponseWriter, r *http.Request) {
	i, err := diskIndex(r)
	off, err2 := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || err2 != nil || r.Method != http.MethodPost {
		http.Error(w, "POST /hs-write?disk=N&offset=O", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	f, err := os.OpenFile(cbt.flats[i], os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt(body, off)
		_ = f.Close()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	cbt.mu.Lock()
	if t := cbt.disks[cbt.keys[i]]; t != nil {
		t.writes = append(t.writes, write{off, off + int64(len(body)), t.seq})
	}
	cbt.mu.Unlock()
}

// hsResize: POST /hs-resize?disk=N&bytes=B, the disk extended (or cut) to B bytes, as
// ExtendVirtualDisk would; snapshots made before keep their capacity.
func hsResize(w http.ResponseWriter, r *http.Request) {
	i, err := diskIndex(r)
	n, err2 := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || err2 != nil || r.Method != http.MethodPost || n <= 0 {
		http.Error(w, "POST /hs-resize?disk=N&bytes=B", http.StatusBadRequest)
		return
	}
	if err := os.Truncate(cbt.flats[i], n); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	cbt.mu.Lock()
	copyDevices(cbt.vm, func(d *types.VirtualDisk) {
		if d.Key == cbt.keys[i] {
			d.CapacityInBytes = n
			d.CapacityInKB = n / 1024
		}
	})
	cbt.mu.Unlock()
}

// hsCbtReset: POST /hs-cbt-reset, the tracking of every disk started over (a new epoch, the
// log dropped), as turning CBT off and on again (or a lost -ctk.vmdk) does on a host.
func hsCbtReset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST /hs-cbt-reset", http.StatusBadRequest)
		return
	}
	cbt.mu.Lock()
	defer cbt.mu.Unlock()
	if cbt.disks == nil {
		http.Error(w, "CBT is off", http.StatusConflict)
		return
	}
	for k := range cbt.disks {
		cbt.disks[k] = &tracked{epoch: newEpoch(), seq: 1}
	}
}

// hsDelta: POST /hs-delta?disk=N, disk N of the VM made a delta on a snapshot taken
// elsewhere (its backing `disk-N-000001.vmdk` with the flat disk as `parent`), as a VM with a
// snapshot of its own has: the flat bytes are then not the disk's current ones.
func hsDelta(w http.ResponseWriter, r *http.Request) {
	i, err := diskIndex(r)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST /hs-delta?disk=N", http.StatusBadRequest)
		return
	}
	cbt.mu.Lock()
	defer cbt.mu.Unlock()
	copyDevices(cbt.vm, func(d *types.VirtualDisk) {
		b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok || d.Key != cbt.keys[i] {
			return
		}
		parent := *b
		b.Parent = &parent
		b.FileName = strings.TrimSuffix(b.FileName, ".vmdk") + "-000001.vmdk"
	})
}

// hsDiskMode: POST /hs-disk-mode?disk=N&mode=M, disk N's backing diskMode set to M (as an
// administrator makes a disk independent_persistent; vCenter then leaves it out of snapshots).
func hsDiskMode(w http.ResponseWriter, r *http.Request) {
	i, err := diskIndex(r)
	mode := r.URL.Query().Get("mode")
	if err != nil || r.Method != http.MethodPost || mode == "" {
		http.Error(w, "POST /hs-disk-mode?disk=N&mode=M", http.StatusBadRequest)
		return
	}
	cbt.mu.Lock()
	defer cbt.mu.Unlock()
	copyDevices(cbt.vm, func(d *types.VirtualDisk) {
		if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && d.Key == cbt.keys[i] {
			b.DiskMode = mode
		}
	})
}

// countingWriter counts the body bytes /folder sends.
type countingWriter struct {
	http.ResponseWriter
	n *int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	st.mu.Lock()
	*c.n += int64(n)
	st.mu.Unlock()
	return n, err
}

// flatDescriptor is the text descriptor of a monolithic flat disk (VMware Virtual Disk
// Format 1.1, createType "vmfs"), as a VMFS datastore keeps beside `-flat.vmdk`.
func flatDescriptor(flat string, size int64) string {
	return fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW %d VMFS \"%s\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n", size/512, flat)
}
