// Test peer: vcsim (govmomi's vSphere simulator) plus the two methods it lacks, VirtualMachine.ExportVm and OvfManager.CreateDescriptor, added with vcsim's extension pattern (Registry.Handler); everything else (SOAP, sessions, inventory, snapshots, NFC leases, property collector) is vcsim's own. As vCenter does, ExportVm refuses a powered-on VM (InvalidPowerState) and, with -api-version, the SOAPAction versions the server does not list (InvalidRequest "Unsupported version URI").
//
// It serves HTTPS with a CA it makes, writes disk fixtures into the VM's datastore files,
// paces NFC downloads on demand, names device URLs with another host on demand (as an ESXi
// host's would be) or serves them from a second TLS listener with its own self-signed
// certificate and the lease's sslThumbprint (-device-tls), sets disk capacities apart from
// the files NFC sends (-capacity-mib, -capacity-percent), and reports what clients did on
// GET /hs-stats.
// It prints one JSON line on stdout when ready, then serves until killed.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type stats struct {
	mu            sync.Mutex
	ProgressCalls int      `json:"progress_calls"`
	ProgressAt    []int64  `json:"progress_at_ms"`
	ProgressPct   []int32  `json:"progress_percent"`
	Completed     int      `json:"completed"`
	Aborted       int      `json:"aborted"`
	Exports       int      `json:"exports"`
	Descriptors   int      `json:"descriptors"`
	NFCPaths      []string `json:"nfc_paths"`
	NFCCookies    []bool   `json:"nfc_cookies"`
	Logouts       int      `json:"logouts"`
	// Leases ExportVm made that were neither completed nor aborted.
	OpenLeases     int `json:"open_leases"`
	open           map[string]bool
	LastOvfFiles   []types.OvfFile
	DescriptorSeen string `json:"last_descriptor_name"`
	// The snapshot CreateDescriptor was given (OvfCreateDescriptorParams.snapshot), "" if none.
	DescriptorSnapshot string `json:"last_descriptor_snapshot"`
	// Snapshots: CreateSnapshot_Task calls that made one, with their memory/quiesce flags,
	// ExportSnapshot leases, RemoveSnapshot_Task calls (with their flags), and how many
	// snapshots exist now (GET /hs-stats counts them).
	SnapshotsCreated int      `json:"snapshots_created"`
	SnapshotFlags    []string `json:"snapshot_flags"`
	SnapshotExports  int      `json:"snapshot_exports"`
	SnapshotsRemoved int      `json:"snapshots_removed"`
	RemoveFlags      []string `json:"remove_flags"`
	Snapshots        int      `json:"snapshots"`
	// ExportVm calls refused because the VM was powered on.
	PowerRefusals int `json:"power_refusals"`
	// The SOAPAction of every SOAP request, and how many were refused for their version.
	SoapActions     []string `json:"soap_actions"`
	VersionRefusals int      `json:"version_refusals"`
	// Requests the -device-tls listener served.
	DeviceTLSRequests int `json:"device_tls_requests"`
	// Changed block tracking (cbt.go): ReconfigVM_Task calls that set changeTrackingEnabled
	// (their value), QueryChangedDiskAreas calls, and the datastore's /folder GETs: how many,
	// the body bytes sent, and how many were refused for want of a session.
	CbtReconfigs  []bool `json:"cbt_reconfigs"`
	CbtQueries    int    `json:"cbt_queries"`
	FolderGets    int    `json:"folder_gets"`
	FolderBytes   int64  `json:"folder_bytes"`
	FolderRefused int    `json:"folder_refused"`
}

var (
	st           stats
	start        = time.Now()
	leaseTimeout = flag.Int("lease-timeout", 300, "leaseTimeout (seconds) given to export leases")
	errorVM      = flag.String("error-vm", "", "VM whose export lease goes to the error state")
	hostileVM    = flag.String("hostile-vm", "", "VM whose export lease names its disk ../../escape.vmdk")
	nfcRate      = flag.Int("nfc-rate", 0, "pace NFC downloads to this many bytes/s per request (0: full speed)")
	deviceHost   = flag.String("device-host", "", "name device URLs with this host (as an ESXi host's would be)")
	devicePort   = flag.String("device-port", "", "name device URLs with this port (a proxy in front of NFC)")
	sameTarget   = flag.String("same-target", "", "give every disk of the lease this targetId (colliding names)")
	descDelay    = flag.Int("descriptor-delay-ms", 0, "answer CreateDescriptor only after this long (a slow vCenter)")
	holdLease    = flag.Bool("hold-lease", false, "keep every export lease initializing (a vCenter still preparing the export)")
	failDesc     = flag.Bool("fail-descriptor", false, "answer CreateDescriptor with a fault (a vCenter that cannot describe the VM)")
	apiVersion   = flag.String("api-version", "", "serve /sdk/vimServiceVersions.xml naming this version (priors 7.0, 6.7) and refuse other SOAPAction versions, as an older vCenter does")
	noVersions   = flag.Bool("no-service-versions", false, "answer /sdk/vimServiceVersions.xml with 404 (a server without the file)")
	capacityMiB  = flag.Int("capacity-mib", 0, "give every fixture disk this capacity (MiB) instead of its file's size: the exported disk is much smaller than capacity, as a streamOptimized one is")
	capacityPct  = flag.Float64("capacity-percent", 0, "give every fixture disk this percent of its file's size as capacity (under 100: a streamOptimized disk of incompressible data is a little larger than its capacity)")
	deviceTLS    = flag.Bool("device-tls", false, "serve device URLs from a second TLS listener (https://localhost:PORT) with its own self-signed certificate, its SHA-1 as the lease's sslThumbprint (an ESXi host's)")
	deviceThumb  = flag.String("device-thumbprint", "", "with -device-tls, put this sslThumbprint in the lease instead of the listener's (a wrong one)")
	flat         = flag.Bool("flat", false, "write each -disk fixture (raw bytes) as a flat disk: disk-N.vmdk descriptor + disk-N-flat.vmdk data, with changed block tracking (cbt.go)")
	cbtWindowMiB = flag.Int("cbt-window-mib", 64, "QueryChangedDiskAreas answers for at most this much of the disk per call")
	// Set in main when -device-tls is given.
	deviceAddr, deviceSHA1 string
)

// lease wraps vcsim's lease to count keep-alives, completes and aborts.
type lease struct {
	*simulator.HttpNfcLease
}

func (l *lease) HttpNfcLeaseProgress(ctx *simulator.Context, req *types.HttpNfcLeaseProgress) soap.HasFault {
	st.mu.Lock()
	st.ProgressCalls++
	st.ProgressAt = append(st.ProgressAt, time.Since(start).Milliseconds())
	st.ProgressPct = append(st.ProgressPct, req.Percent)
	st.mu.Unlock()
	return l.HttpNfcLease.HttpNfcLeaseProgress(ctx, req)
}

// closed marks a lease completed or aborted (once).
func closed(ref types.ManagedObjectReference) {
	if st.open[ref.Value] {
		delete(st.open, ref.Value)
		st.OpenLeases--
	}
}

func (l *lease) HttpNfcLeaseComplete(ctx *simulator.Context, req *types.HttpNfcLeaseComplete) soap.HasFault {
	st.mu.Lock()
	st.Completed++
	closed(req.This)
	st.mu.Unlock()
	return l.HttpNfcLease.HttpNfcLeaseComplete(ctx, req)
}

func (l *lease) HttpNfcLeaseAbort(ctx *simulator.Context, req *types.HttpNfcLeaseAbort) soap.HasFault {
	st.mu.Lock()
	st.Aborted++
	closed(req.This)
	st.mu.Unlock()
	return l.HttpNfcLease.HttpNfcLeaseAbort(ctx, req)
}

// exportVM adds ExportVm, reusing vcsim's ExportSnapshot lease code on the VM's current
// configuration (no snapshot is created; the VM is not changed). Like vCenter, it refuses a
// powered-on VM: those are exported through a snapshot (CreateSnapshot_Task, ExportSnapshot).
type exportVM struct {
	*simulator.VirtualMachine
}

func (vm *exportVM) ExportVm(ctx *simulator.Context, req *types.ExportVm) soap.HasFault {
	defer ctx.Session.Remove(ctx, vm.Self)
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		st.mu.Lock()
		st.PowerRefusals++
		st.mu.Unlock()
		return &methods.ExportVmBody{Fault_: simulator.Fault(
			"The attempted operation cannot be performed in the current state (Powered on).",
			&types.InvalidPowerState{ExistingState: vm.Runtime.PowerState, RequestedState: types.VirtualMachinePowerStatePoweredOff},
		)}
	}
	snap := &simulator.VirtualMachineSnapshot{}
	snap.Vm = vm.Self
	snap.Config = *vm.Config
	res := snap.ExportSnapshot(ctx, &types.ExportSnapshot{This: vm.Self}).(*methods.ExportSnapshotBody)
	ref := res.Res.Returnval
	dressLease(ctx, vm.Name, ref)
	return &methods.ExportVmBody{Res: &types.ExportVmResponse{Returnval: ref}}
}

// snapshotVM counts the snapshots clients make (vcsim's own CreateSnapshot_Task).
type snapshotVM struct {
	*simulator.VirtualMachine
}

func (vm *snapshotVM) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	defer ctx.Session.Remove(ctx, vm.Self)
	stampSnapshot(vm.VirtualMachine)
	r := vm.VirtualMachine.CreateSnapshotTask(ctx, req)
	if r.Fault() == nil {
		st.mu.Lock()
		st.SnapshotsCreated++
		st.SnapshotFlags = append(st.SnapshotFlags, fmt.Sprintf("memory=%t quiesce=%t", req.Memory, req.Quiesce))
		st.mu.Unlock()
	}
	return r
}

// snapshot counts exports and removals of snapshots (vcsim's own methods underneath).
type snapshot struct {
	*simulator.VirtualMachineSnapshot
}

func (s *snapshot) ExportSnapshot(ctx *simulator.Context, req *types.ExportSnapshot) soap.HasFault {
	defer ctx.Session.Remove(ctx, s.Self)
	r := s.VirtualMachineSnapshot.ExportSnapshot(ctx, req)
	if b, ok := r.(*methods.ExportSnapshotBody); ok && b.Res != nil {
		name := ""
		if vm, ok := ctx.Map.Get(s.Vm).(*simulator.VirtualMachine); ok {
			name = vm.Name
		}
		dressLease(ctx, name, b.Res.Returnval)
		st.mu.Lock()
		st.SnapshotExports++
		st.mu.Unlock()
	}
	return r
}

func (s *snapshot) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	defer ctx.Session.Remove(ctx, s.Self)
	r := s.VirtualMachineSnapshot.RemoveSnapshotTask(ctx, req)
	if r.Fault() == nil {
		consolidate := "unset"
		if req.Consolidate != nil {
			consolidate = fmt.Sprint(*req.Consolidate)
		}
		st.mu.Lock()
		st.SnapshotsRemoved++
		st.RemoveFlags = append(st.RemoveFlags, fmt.Sprintf("removeChildren=%t consolidate=%s", req.RemoveChildren, consolidate))
		st.mu.Unlock()
	}
	return r
}

// handler routes the methods this peer adds or counts to their wrappers (vcsim's
// Registry.Handler). The global registry keeps vcsim's own objects, which its code expects;
// the wrapper goes into the caller's session registry (which vcsim prefers for the call) and
// takes itself out when its method returns.
func handler(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	var w mo.Reference
	switch m.Name {
	case "ExportVm":
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok {
			w = &exportVM{vm}
		}
	case "CreateSnapshot_Task":
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok {
			w = &snapshotVM{vm}
		}
	case "ReconfigVM_Task", "QueryChangedDiskAreas":
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok {
			w = &cbtVM{vm}
		}
	case "ExportSnapshot", "RemoveSnapshot_Task":
		if s, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot); ok {
			w = &snapshot{s}
		}
	}
	if w != nil && ctx.Session != nil {
		ctx.Session.Put(w)
	}
	return w, nil
}

// dressLease applies the lease flags to a new export lease of VM `name` and counts it.
func dressLease(ctx *simulator.Context, name string, ref types.ManagedObjectReference) {
	l := ctx.Session.Get(ref).(*simulator.HttpNfcLease)
	ctx.WithLock(l, func() {
		l.Info.LeaseTimeout = int32(*leaseTimeout)
		if name == *hostileVM && len(l.Info.DeviceUrl) > 0 {
			l.Info.DeviceUrl[0].TargetId = "../../escape.vmdk"
		}
		if *sameTarget != "" {
			for i := range l.Info.DeviceUrl {
				l.Info.DeviceUrl[i].TargetId = *sameTarget
			}
		}
		if deviceAddr != "" {
			// As an ESXi host's device URL: its own host and certificate, whose SHA-1
			// thumbprint (govmomi soap.ThumbprintSHA1's format) the lease carries.
			for i := range l.Info.DeviceUrl {
				d := &l.Info.DeviceUrl[i]
				if u, err := url.Parse(d.Url); err == nil {
					u.Host = deviceAddr
					d.Url = u.String()
				}
				d.SslThumbprint = deviceSHA1
				if *deviceThumb != "" {
					d.SslThumbprint = *deviceThumb
				}
			}
		}
		if *deviceHost != "" || *devicePort != "" {
			for i := range l.Info.DeviceUrl {
				d := &l.Info.DeviceUrl[i]
				if u, err := url.Parse(d.Url); err == nil {
					host, port := u.Hostname(), u.Port()
					if *deviceHost != "" {
						host = *deviceHost
					}
					if *devicePort != "" {
						port = *devicePort
					}
					u.Host = host + ":" + port
					d.Url = u.String()
				}
			}
		}
	})
	if name == *errorVM {
		ctx.WithLock(l, func() {
			ctx.Update(l, []types.PropertyChange{
				{Name: "state", Val: types.HttpNfcLeaseStateError},
				{Name: "error", Val: &types.LocalizedMethodFault{
					Fault:            &types.FileFault{File: "disk"},
					LocalizedMessage: "simulated lease failure: the disk is locked",
				}},
			})
		})
	}
	if *holdLease {
		ctx.WithLock(l, func() {
			ctx.Update(l, []types.PropertyChange{{Name: "state", Val: types.HttpNfcLeaseStateInitializing}})
		})
	}
	ctx.Session.Put(&lease{l})
	st.mu.Lock()
	st.Exports++
	if st.open == nil {
		st.open = map[string]bool{}
	}
	st.open[ref.Value] = true
	st.OpenLeases++
	st.mu.Unlock()
}

// ovfManager adds CreateDescriptor: an OVF 1.0 envelope for the VM's disks, listing the files
// the client says it has (ovfFiles), as vCenter does.
type ovfManager struct {
	*simulator.OvfManager
}

var ovfTemplate = template.Must(template.New("ovf").Funcs(template.FuncMap{"add": func(a, b int) int { return a + b }}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
{{- range $i, $f := .Files}}
    <File ovf:href="{{$f.Path}}" ovf:id="file{{$i}}" ovf:size="{{$f.Size}}"/>
{{- end}}
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
{{- range $i, $f := .Files}}
    <Disk ovf:capacity="{{index $.Capacity $i}}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk{{$i}}" ovf:fileRef="file{{$i}}" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
{{- end}}
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{{.Name}}">
    <Info>A virtual machine</Info>
    <Name>{{.Name}}</Name>
    <OperatingSystemSection ovf:id="1">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{{.Name}}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>{{.CPUs}} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.CPUs}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>{{.MemoryMB}}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{{.MemoryMB}}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
{{- range $i, $f := .Files}}
      <Item>
        <rasd:AddressOnParent>{{$i}}</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk {{$i}}</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk{{$i}}</rasd:HostResource>
        <rasd:InstanceID>{{add $i 10}}</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
{{- end}}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`))

func (m *ovfManager) CreateDescriptor(ctx *simulator.Context, req *types.CreateDescriptor) soap.HasFault {
	if *descDelay > 0 {
		time.Sleep(time.Duration(*descDelay) * time.Millisecond)
	}
	body := &methods.CreateDescriptorBody{}
	vm, ok := ctx.Map.Get(req.Obj).(*simulator.VirtualMachine)
	if !ok {
		body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: req.Obj})
		return body
	}
	snapRef := ""
	if req.Cdp.Snapshot != nil {
		if _, ok := ctx.Map.Get(*req.Cdp.Snapshot).(*simulator.VirtualMachineSnapshot); !ok {
			body.Fault_ = simulator.Fault("", &types.ManagedObjectNotFound{Obj: *req.Cdp.Snapshot})
			return body
		}
		snapRef = req.Cdp.Snapshot.Value
	}
	st.mu.Lock()
	st.DescriptorSnapshot = snapRef
	st.mu.Unlock()
	if *failDesc {
		body.Fault_ = simulator.Fault("simulated CreateDescriptor failure", &types.RuntimeFault{})
		return body
	}
	name := req.Cdp.Name
	if name == "" {
		name = vm.Name
	}
	// Capacity of each disk, in device order.
	var capacity []int64
	for _, d := range object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil)) {
		capacity = append(capacity, d.(*types.VirtualDisk).CapacityInBytes)
	}
	for len(capacity) < len(req.Cdp.OvfFiles) {
		capacity = append(capacity, 0)
	}
	for i, f := range req.Cdp.OvfFiles {
		if capacity[i] < f.Size {
			capacity[i] = f.Size
		}
	}
	var buf bytes.Buffer
	err := ovfTemplate.Execute(&buf, map[string]any{
		"Name": name, "Files": req.Cdp.OvfFiles, "Capacity": capacity,
		"CPUs": vm.Config.Hardware.NumCPU, "MemoryMB": vm.Config.Hardware.MemoryMB,
	})
	if err != nil {
		body.Fault_ = simulator.Fault(err.Error(), &types.RuntimeFault{})
		return body
	}
	st.mu.Lock()
	st.Descriptors++
	st.LastOvfFiles = req.Cdp.OvfFiles
	st.DescriptorSeen = name
	st.mu.Unlock()
	body.Res = &types.CreateDescriptorResponse{Returnval: types.OvfCreateDescriptorResult{OvfDescriptor: buf.String()}}
	return body
}

// makeCA returns a CA (PEM) and a server certificate for 127.0.0.1/localhost signed by it.
func makeCA() ([]byte, tls.Certificate) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hypersdk test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// selfSigned returns a certificate for localhost signed by its own key (no CA vouches for it),
// and its SHA-1 and SHA-256 thumbprints in govmomi's format (soap.ThumbprintSHA1/SHA256).
func selfSigned(name string) (tls.Certificate, string, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost", name},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	c, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, soap.ThumbprintSHA1(c), soap.ThumbprintSHA256(c)
}

// pacedWriter slows NFC bodies down.
type pacedWriter struct {
	http.ResponseWriter
	rate int
}

func (p pacedWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		c := min(len(b), 32*1024)
		w, err := p.ResponseWriter.Write(b[:c])
		n += w
		if err != nil {
			return n, err
		}
		b = b[c:]
		time.Sleep(time.Duration(float64(c) / float64(p.rate) * float64(time.Second)))
	}
	return n, nil
}

func main() {
	user := flag.String("user", "admin", "username vcsim accepts")
	pass := flag.String("pass", "s3cret-pass", "password vcsim accepts")
	dir := flag.String("dir", "", "folder for the CA file and stats (default: a temp folder)")
	var disks multi
	flag.Var(&disks, "disk", "disk fixture for DC0_H0_VM0 (repeat for more disks)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "vcsim-peer-")
		if err != nil {
			log.Fatal(err)
		}
		*dir = d
	}
	// vcsim keeps its datastores in os.MkdirTemp("", "govcsim-") and removes them only on a clean
	// shutdown; the tests stop the peer with a kill, which left 25 MB in /tmp per run. Inside the
	// peer's folder they go with it.
	home := filepath.Join(*dir, "vcsim-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		log.Fatal(err)
	}
	os.Setenv("TMPDIR", home)

	model := simulator.VPX()
	model.Datacenter = 1
	model.Cluster = 0
	model.Host = 1
	model.Machine = 3
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	caPEM, cert := makeCA()
	caFile := filepath.Join(*dir, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		log.Fatal(err)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(*user, *pass)}

	m := model.Map()
	si := m.Get(types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"}).(*simulator.ServiceInstance)
	m.Put(&ovfManager{m.Get(*si.Content.OvfManager).(*simulator.OvfManager)})

	// Disk fixtures for DC0_H0_VM0: as many disks as fixtures, bytes copied into the datastore.
	var diskFiles []string
	if len(disks) > 0 {
		vm := m.Any("VirtualMachine").(*simulator.VirtualMachine)
		for _, o := range m.All("VirtualMachine") {
			if o.(*simulator.VirtualMachine).Name == "DC0_H0_VM0" {
				vm = o.(*simulator.VirtualMachine)
			}
		}
		devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
		existing := devices.SelectByType((*types.VirtualDisk)(nil))
		if len(existing) == 0 {
			log.Fatal("the VM has no disk to copy")
		}
		first := existing[0].(*types.VirtualDisk)
		backing := first.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		var dp object.DatastorePath
		dp.FromString(backing.FileName)
		ds := m.Get(*backing.Datastore).(*simulator.Datastore)
		for i, fixture := range disks {
			data, err := os.ReadFile(fixture)
			if err != nil {
				log.Fatal(err)
			}
			rel := path.Join(path.Dir(dp.Path), fmt.Sprintf("disk-%d.vmdk", i))
			disk := first
			if i > 0 {
				copyDisk := *first
				b := *backing
				copyDisk.Backing = &b
				copyDisk.Key = first.Key + int32(i)
				unit := *first.UnitNumber + int32(i)
				copyDisk.UnitNumber = &unit
				disk = &copyDisk
				vm.Config.Hardware.Device = append(vm.Config.Hardware.Device, disk)
			}
			disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).FileName = fmt.Sprintf("[%s] %s", dp.Datastore, rel)
			disk.CapacityInBytes = int64(len(data))
			if *capacityMiB > 0 {
				disk.CapacityInBytes = int64(*capacityMiB) << 20
				disk.CapacityInKB = int64(*capacityMiB) << 10
			}
			if *capacityPct > 0 {
				disk.CapacityInBytes = int64(float64(len(data))*(*capacityPct)/100) / 512 * 512
				disk.CapacityInKB = disk.CapacityInBytes / 1024
			}
			local := path.Join(ds.Summary.Url, rel)
			if err := os.MkdirAll(path.Dir(local), 0o755); err != nil {
				log.Fatal(err)
			}
			if *flat {
				// The descriptor where the backing points, the bytes in -flat.vmdk.
				flatRel := strings.TrimSuffix(rel, ".vmdk") + "-flat.vmdk"
				flatLocal := path.Join(ds.Summary.Url, flatRel)
				if err := os.WriteFile(flatLocal, data, 0o644); err != nil {
					log.Fatal(err)
				}
				data = []byte(flatDescriptor(path.Base(flatRel), int64(len(data))))
				disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo).Uuid = fmt.Sprintf("6000C29%d-0000-0000-0000-00000000000%d", i, i)
				cbt.vm, cbt.flats, cbt.keys = vm, append(cbt.flats, flatLocal), append(cbt.keys, disk.Key)
			}
			if err := os.WriteFile(local, data, 0o644); err != nil {
				log.Fatal(err)
			}
			if *flat {
				diskFiles = append(diskFiles, cbt.flats[i])
			} else {
				diskFiles = append(diskFiles, local)
			}
		}
	}

	m.Handler = handler
	cbtWindow = *cbtWindowMiB << 20
	var vms []map[string]any
	for _, obj := range m.All("VirtualMachine") {
		vm := obj.(*simulator.VirtualMachine)
		vms = append(vms, map[string]any{"name": vm.Name, "moref": vm.Self.Value, "power": string(vm.Runtime.PowerState)})
	}

	s := model.Service.NewServer()
	inner := s.Server.Config.Handler
	s.Server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/hs-stats":
			n := 0
			var count func([]types.VirtualMachineSnapshotTree)
			count = func(l []types.VirtualMachineSnapshotTree) {
				for _, t := range l {
					n++
					count(t.ChildSnapshotList)
				}
			}
			for _, o := range m.All("VirtualMachine") {
				vm := o.(*simulator.VirtualMachine)
				// vcsim replaces the tree on each change (ctx.Update), so a read sees one.
				if snap := vm.Snapshot; snap != nil {
					count(snap.RootSnapshotList)
				}
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			st.Snapshots = n
			_ = json.NewEncoder(w).Encode(&st)
			return
		case r.URL.Path == "/hs-write":
			hsWrite(w, r)
			return
		case r.URL.Path == "/hs-resize":
			hsResize(w, r)
			return
		case r.URL.Path == "/hs-delta":
			hsDelta(w, r)
			return
		case r.URL.Path == "/hs-cbt-reset":
			hsCbtReset(w, r)
			return
		case r.URL.Path == "/hs-disk-mode":
			hsDiskMode(w, r)
			return
		case strings.HasPrefix(r.URL.Path, "/folder/") && r.Method == http.MethodGet:
			// vCenter serves datastore files only to a session (or basic auth): vcsim
			// serves anyone, so the peer refuses a request without the session cookie.
			if !strings.Contains(r.Header.Get("Cookie"), "vmware_soap_session=") {
				st.mu.Lock()
				st.FolderRefused++
				st.mu.Unlock()
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			st.mu.Lock()
			st.FolderGets++
			st.mu.Unlock()
			w = countingWriter{w, &st.FolderBytes}
		case r.URL.Path == "/sdk/vimServiceVersions.xml" && *noVersions:
			http.NotFound(w, r)
			return
		case r.URL.Path == "/sdk/vimServiceVersions.xml" && *apiVersion != "":
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8" ?>
<namespaces version="1.0">
 <namespace>
  <name>urn:vim25</name>
  <version>%s</version>
  <priorVersions>
   <version>7.0</version>
   <version>6.7</version>
  </priorVersions>
 </namespace>
</namespaces>
`, *apiVersion)
			return
		case r.Method == http.MethodPost && r.URL.Path == "/sdk":
			action := strings.Trim(r.Header.Get("SOAPAction"), `"`)
			st.mu.Lock()
			st.SoapActions = append(st.SoapActions, action)
			st.mu.Unlock()
			if *apiVersion != "" {
				v := strings.TrimPrefix(action, "urn:vim25/")
				if v != *apiVersion && v != "7.0" && v != "6.7" {
					st.mu.Lock()
					st.VersionRefusals++
					st.mu.Unlock()
					// vCenter's answer to a version it does not know.
					w.Header().Set("Content-Type", "text/xml; charset=utf-8")
					w.WriteHeader(http.StatusInternalServerError)
					fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Unsupported version URI &quot;urn:vim25/%s&quot;</faultstring><detail><InvalidRequestFault xmlns="urn:vim25" xsi:type="InvalidRequest"></InvalidRequestFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`, v)
					return
				}
			}
			// Count logouts (a client must not leave sessions behind on vCenter); vcsim's
			// SessionManager cannot be wrapped, so read the SOAP body on its way in.
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte("<Logout")) {
				st.mu.Lock()
				st.Logouts++
				st.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		case strings.HasPrefix(r.URL.Path, "/nfc/"):
			st.mu.Lock()
			st.NFCPaths = append(st.NFCPaths, r.URL.Path)
			st.NFCCookies = append(st.NFCCookies, r.Header.Get("Cookie") != "")
			st.mu.Unlock()
			if *nfcRate > 0 {
				w = pacedWriter{w, *nfcRate}
			}
		}
		inner.ServeHTTP(w, r)
	})
	if *deviceTLS {
		devCert, sha1, _ := selfSigned("esx-host")
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{devCert}})
		if err != nil {
			log.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		deviceAddr, deviceSHA1 = "localhost:"+port, sha1
		outer := s.Server.Config.Handler
		go func() {
			_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/nfc/") {
					http.NotFound(w, r)
					return
				}
				st.mu.Lock()
				st.DeviceTLSRequests++
				st.mu.Unlock()
				outer.ServeHTTP(w, r)
			}))
		}()
	}
	// The vCenter's own certificate's thumbprints, for a client that pins it.
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	ready := map[string]any{
		"url": s.URL.Scheme + "://" + s.URL.Host + "/sdk", "ca_file": caFile,
		"user": *user, "datacenter": "DC0", "vms": vms, "disk_files": diskFiles,
		"thumbprint_sha1": soap.ThumbprintSHA1(leaf), "thumbprint_sha256": soap.ThumbprintSHA256(leaf),
		"device_thumbprint_sha1": deviceSHA1,
	}
	out, _ := json.Marshal(ready)
	fmt.Println(string(out))
	select {}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
