package sim

import (
	"strings"
	"testing"
)

// TestSimRegressions replays shrunk histories of bugs the simulator found;
// each failed before its fix.
func TestSimRegressions(t *testing.T) {
	module := echoModule(t)
	cases := []struct {
		name  string
		seed  int64
		steps []step
	}{
		// A client retries while its daemon is frozen on the source; the
		// migration times out and ResumeLocal applied every buffered copy,
		// because it dropped the events' exactly-once flag
		// (internal/migration/driver/run.go resumeLocal).
		{"resume-keeps-once", 58, []step{{stMigrate, 1027414135, 1601471994, 3587626168}, {stSend, 1452408026, 1774525547, 2287698537}, {stJump, 1139696724, 193403887, 929975803}}},
		// A client retries against the restored, not yet live copy on the
		// target; going live applied every held copy: the target's
		// interceptor and machine dropped the flag (internal/migration/driver/run.go
		// targetInterceptor, internal/migration/protocol/target.go hold).
		{"held-keeps-once", 80, []step{{stMigrate, 4265701305, 2797233631, 664067832}, {stDeliver, 3854327654, 3920999154, 3128017176}, {stDeliver, 1322534233, 3655148946, 3994385681}, {stPartition, 3092125044, 2484257790, 1937821215}, {stRestore, 407164109, 2813590327, 1917192130}, {stTick, 4271021611, 2213764177, 2318648676}, {stSend, 1968872372, 1293121181, 512688033}}},
		{"retried-activate-gets-abort", 188, []step{{stMigrate, 454014627, 4141695126, 2019943545}, {stSend, 2137079231, 2612793965, 1853512010}, {stPartition, 2933471098, 3687361000, 639155483}, {stSend, 3827562316, 1192537134, 3686663851}, {stDeliver, 489699623, 2573324616, 3101294743}, {stDeliver, 444493260, 441767437, 781750228}, {stHeal, 2063818722, 287277281, 3698808510}, {stMigrate, 865171410, 800337045, 1659293796}, {stDeliver, 4110354066, 923106560, 2593013661}, {stDeliver, 664175962, 4001023396, 3458364757}, {stRestore, 2553347512, 1951151557, 2192668787}, {stDeliver, 3512243381, 1389343792, 2551655988}, {stPartition, 291740132, 3494318483, 3691672931}, {stJump, 3165044204, 3585405469, 1685027652}}},
		// A ReplayBatch was lost (a broken stream) in the cutover; the
		// orchestrator's retried Cutover kept resetting the source's
		// retransmit timer, so the events were never resent and the
		// migration hung with the daemon frozen (internal/migration/protocol/source.go: a
		// retried Cutover resends what the target has not acknowledged).
		{"retried-cutover-resends-events", 390, []step{{stSend, 2231693767, 2223176192, 3964373222}, {stDrop, 845799762, 4029134641, 228620744}, {stDeliver, 2956359583, 2796385012, 3737423929}, {stMigrate, 1762403257, 1941231277, 4219598969}, {stDeliver, 4244604331, 2133350797, 2722931297}, {stSend, 2805757060, 1290437729, 1414829208}, {stDrop, 1194776837, 683423224, 3628965678}, {stSend, 2921751724, 93172402, 952849888}, {stDeliver, 309473127, 1603299535, 2637072098}, {stMigrate, 3964529896, 1081841787, 3958051455}, {stSend, 667184424, 1871430949, 1278221810}, {stDeliver, 1345347759, 3262423694, 552007667}, {stDeliver, 4184545735, 2799577110, 149737329}, {stSend, 328379543, 1943552787, 1671383677}, {stSend, 3361803393, 1302224743, 3965410078}, {stDeliver, 4200761917, 786393798, 3673772426}, {stDeliver, 2890860389, 3322324720, 266680395}, {stMigrate, 1111481494, 4066077793, 2268567974}, {stDeliver, 968984620, 3561713438, 22557546}, {stDeliver, 467256498, 2258913741, 2906122352}, {stMigrate, 952358827, 4110153519, 175570251}, {stDeliver, 3134850353, 3992432265, 248106355}, {stDeliver, 3331294891, 151422469, 2099077030}, {stDuplicate, 3406818242, 3955337686, 1113004213}, {stDeliver, 1958934453, 428746922, 2961886435}, {stTick, 982208894, 716020786, 2103132622}, {stDrop, 1452057467, 417674639, 3280680592}, {stTick, 1757736668, 3074434565, 591126900}, {stDeliver, 1787827833, 73857012, 1676356165}, {stDeliver, 2897581578, 2525818679, 979406914}, {stDeliver, 2025569039, 1234331296, 3708605809}, {stDeliver, 3360765913, 2069845417, 2108710666}, {stDeliver, 2552772913, 2774703920, 298189394}, {stDeliver, 2451828637, 3648050187, 1500625086}, {stRestore, 3853062213, 1823189669, 2844106880}, {stDeliver, 509571908, 1275369878, 2087694799}, {stDeliver, 2378429887, 1182536717, 3035216951}, {stDeliver, 1395485592, 517763446, 1450505455}, {stSend, 660536488, 930933693, 2547328049}, {stRestore, 2586912126, 2203069081, 3228033399}, {stCancel, 1404895878, 1978341728, 1642130911}, {stDeliver, 1732136188, 2627654213, 364400334}, {stDrop, 381704546, 3360532500, 3448329850}, {stDuplicate, 2926978669, 2266007532, 1320316592}, {stDeliver, 3201057086, 3797423866, 1767923633}, {stTick, 264798090, 2750169836, 2223140028}}},
		// The target's ActivateAck to the orchestrator was lost; the source
		// had handed over and answered the retried Cutover with nothing,
		// so the orchestrator's handle never finished (internal/migration/protocol/source.go:
		// a handed-over source asks the live target again).
		{"retried-cutover-after-handover", 103, []step{{stMigrate, 1190962546, 2017980472, 3937355527}, {stDeliver, 891273191, 3800168136, 2488446987}, {stDeliver, 3411703574, 3879935179, 2488970226}, {stDuplicate, 1692004062, 2919837798, 1144496293}, {stDeliver, 1128343873, 605325035, 4076850236}, {stTick, 1463894622, 2878147914, 2323393940}, {stJump, 190583430, 1051395336, 2029448779}, {stSend, 1475920243, 194496978, 4093299211}, {stDeliver, 2481272714, 906544792, 3826568046}, {stRestore, 2568536407, 1023855583, 708269648}, {stDeliver, 1807553393, 3560779865, 185857562}, {stDeliver, 3378574645, 2149740845, 256427961}, {stDeliver, 1981194109, 217754784, 1875868489}, {stDeliver, 1810803210, 4173179792, 2149439884}, {stDuplicate, 419895656, 412202816, 1665208481}, {stDeliver, 2017610367, 999892245, 3562219046}, {stDeliver, 857299634, 696421574, 3664322965}, {stDeliver, 2307611549, 3173021165, 2613623056}, {stDeliver, 4064122713, 2294931121, 3392508348}, {stDeliver, 545262825, 452479251, 3438074682}, {stDeliver, 144663247, 2873225043, 72714109}, {stMigrate, 1109974677, 3018441487, 2291851178}, {stDrop, 1676634345, 558392364, 3336029828}}},
		// The source gave up before the cutover reached it and its Abort
		// to the orchestrator was lost; the orchestrator, past its cutover,
		// retried Cutover for good (the source now repeats its Abort).
		{"retried-cutover-after-abort", 650, []step{{stMigrate, 942079543, 1267154178, 3753918043}, {stDeliver, 852823392, 2920072845, 2549076345}, {stDeliver, 3248443973, 1398387135, 1492208714}, {stDeliver, 937913803, 2662043021, 1918326042}, {stDeliver, 3828777813, 857541419, 1358314256}, {stRestore, 638608408, 1260365024, 3918645214}, {stDeliver, 573328794, 4022013076, 606438708}, {stDeliver, 4200405966, 1046295389, 1653294975}, {stJump, 3683367653, 1279228551, 1889678940}, {stPartition, 1686487715, 347143964, 2171836392}}},
	}
	for _, c := range cases {
		res := runSim(t, c.seed, defaultCluster, module, c.steps)
		if res.failed() {
			t.Errorf("%s: %s\n%s", c.name, res.failure, strings.Join(res.trace, "\n"))
		}
		if !strings.Contains(strings.Join(res.trace, "\n"), "  migration d") {
			t.Errorf("%s: no migration ended; the history no longer reaches the bug", c.name)
		}
	}
}
