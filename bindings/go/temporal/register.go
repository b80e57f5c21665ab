package temporal

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Register puts the ExportWave workflow and a's Export activity on a worker, under the names
// WorkflowName and ActivityName.
func Register(r worker.Registry, a *Activities) {
	r.RegisterWorkflowWithOptions(ExportWave, workflow.RegisterOptions{Name: WorkflowName})
	r.RegisterActivityWithOptions(a.Export, activity.RegisterOptions{Name: ActivityName})
}
