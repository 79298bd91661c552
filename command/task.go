package command

import (
	"encoding/json"
	"time"
)

// Task is a batch task (CMD-8): one command sent to a list of devices, with
// durable counts of how its commands ended. Counts are kept by the Store and
// raised in the same write as the command's final move.
type Task struct {
	ID           string
	Name         string
	AppID        string
	Total        int // number of devices in the task
	Successful   int
	Failed       int // FAILED, and devices whose command could not be created
	Timeout      int
	Expired      int
	Canceled     int
	CreationTime time.Time
}

// Completed returns how many of the task's commands reached an end state.
func (t *Task) Completed() int { return t.Successful + t.Failed + t.Timeout + t.Expired + t.Canceled }

// Progress returns the share of completed commands in per mille, 0..1000;
// a task of no devices is complete (1000).
func (t *Task) Progress() int {
	if t.Total <= 0 {
		return 1000
	}
	p := t.Completed() * 1000 / t.Total
	return min(p, 1000)
}

// State returns the API's task status: "Running" until every command has
// ended, then "Complete".
func (t *Task) State() string {
	if t.Completed() >= t.Total {
		return "Complete"
	}
	return "Running"
}

// Count adds one command that ended in status s to t's counts. Non-final
// statuses are ignored.
func (t *Task) Count(s Status) {
	switch s {
	case Successful:
		t.Successful++
	case Failed:
		t.Failed++
	case Timeout:
		t.Timeout++
	case Expired:
		t.Expired++
	case Canceled:
		t.Canceled++
	}
}

// MarshalJSON writes the API's task answer: taskId, taskName, appId, status,
// progress (per mille), totalCnt, successCnt, failCnt, timeoutCnt,
// expiredCnt, completeCnt, successRate (per mille of totalCnt) and, ours,
// cancelCnt and createTime.
func (t Task) MarshalJSON() ([]byte, error) {
	rate := 0
	if t.Total > 0 {
		rate = t.Successful * 1000 / t.Total
	}
	return json.Marshal(struct {
		TaskID      string  `json:"taskId"`
		TaskName    string  `json:"taskName"`
		AppID       string  `json:"appId"`
		Status      string  `json:"status"`
		Progress    int     `json:"progress"`
		TotalCnt    int     `json:"totalCnt"`
		SuccessCnt  int     `json:"successCnt"`
		FailCnt     int     `json:"failCnt"`
		TimeoutCnt  int     `json:"timeoutCnt"`
		ExpiredCnt  int     `json:"expiredCnt"`
		CancelCnt   int     `json:"cancelCnt"`
		CompleteCnt int     `json:"completeCnt"`
		SuccessRate int     `json:"successRate"`
		CreateTime  *string `json:"createTime"`
	}{t.ID, t.Name, t.AppID, t.State(), t.Progress(), t.Total, t.Successful, t.Failed, t.Timeout,
		t.Expired, t.Canceled, t.Completed(), rate, apiTime(t.CreationTime)})
}

// BatchRequest asks for a batch task (CMD-8): Command is sent to every
// device of DeviceIDs. Expanding a group, a product or "all devices" into
// the list is the platform's job. Every command of a batch is cached:
// Command.ExpireTime 0 is refused.
type BatchRequest struct {
	Name      string   `json:"taskName"`
	DeviceIDs []string `json:"deviceList"`
	// Command is the command for every device; its DeviceID is ignored.
	Command Request `json:"command"`
}
