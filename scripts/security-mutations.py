#!/usr/bin/env python3
"""Undoes each fix of issue 9, one at a time, and checks that the tests written for it fail.

Each mutation puts back the hole (or the old code) behind one promise, builds, runs the tests that hold that
promise, and restores the sources. A test that still passes against its mutation proves nothing: this script
then exits 1. It needs a clean work tree (it restores Sources/ with git checkout) and takes about 10 minutes.
    scripts/security-mutations.py [NAME-PREFIX ...]
"""
import subprocess, sys, os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if subprocess.run("git diff --quiet -- Sources", shell=True).returncode != 0:
    sys.exit("security-mutations: Sources/ has uncommitted changes; commit or stash them first")
OLD_TREE_RECEIVER = subprocess.run("git show b7ca261:Sources/IonLabTransfer/TreeReceiver.swift", shell=True,
                                   capture_output=True, text=True, check=True).stdout
# The old receiver, spoken in today's types (the agent protocol's stream messages, generic streams).
for before, after in [
    ("import IonLabWire\n", "import IonLabAgentProtocol\nimport IonLabWire\n"),
    ("public func receive(from stream: WireStream, first: Message? = nil)",
     "public func receive<M: AgentStreamCarrier>(from stream: WireStream<M>, first: AgentStreamMessage? = nil)"),
    ("stream.send(.transferDone(", "stream.send(carrying: .transferDone("),
    ("stream.send(.failure(", "stream.send(carrying: .failure("),
    ("private func receiveTree(from stream: WireStream, first firstMessage: Message?)",
     "private func receiveTree<M: AgentStreamCarrier>(from stream: WireStream<M>, first firstMessage: AgentStreamMessage?)"),
    ("let message: Message", "let message: AgentStreamMessage"),
    ("stream.nextMessage()", "stream.nextCarried()"),
    ("private func receiveFile(_ entry: TreeEntry, at path: String, from stream: WireStream)",
     "private func receiveFile<M: AgentStreamCarrier>(_ entry: TreeEntry, at path: String, from stream: WireStream<M>)"),
    ("switch try await stream.next()", "switch try await stream.nextCarriedItem()"),
]:
    assert before in OLD_TREE_RECEIVER, before
    OLD_TREE_RECEIVER = OLD_TREE_RECEIVER.replace(before, after)
M = [
 ("M1 old tree receiver", [("Sources/IonLabTransfer/TreeReceiver.swift", None, OLD_TREE_RECEIVER)], "item1_"),
 ("M2 no role check", [("Sources/IonLabPKI/TLSSetup.swift", "guard leaf.isControllerCertificate else {", "guard leaf.isControllerCertificate || true else {")], "item2_"),
 ("M3 seed files 0644", [("Sources/IonLabProvision/Seed.swift", "file.executable ? 0o700 : 0o600)", "file.executable ? 0o755 : 0o644)")], "seedFilesAreWrittenForTheirOwnerOnly"),
 ("M4a deadline ends at hello", [("Sources/IonLabController/AgentListener.swift", "                switch judged {\n                case nil:", "                authenticated.now()\n                switch judged {\n                case nil:")], "item4_aPeerThatSaysHello"),
 ("M4b no bound", [("Sources/IonLabController/UnauthenticatedConnections.swift", "init(limit: Int) { self.limit = max(1, limit) }", "init(limit: Int) { self.limit = Int.max / 2 }")], "item4_stalling"),
 ("M5 no field checks", [("Sources/IonLabWire/MessageCoding.swift", "        try message.check()\n", "")], "item5_"),
 ("M6 one-message listings", [("Sources/IonLabController/AdminServer.swift", "    static let partBytes = 256 << 10", "    static let partBytes = 1 << 40")], "item6_listings"),
 ("M7 renewals unchecked", [("Sources/IonLabController/Store.swift", "guard let row, (row[\"revoked\"] as Double?) == nil, (row[\"state\"] as String?) == AgentRecord.State.enrolled.rawValue else {", "guard true else {"),
                           ("Sources/IonLabController/Enrollment.swift", "        guard standing.agentState == .enrolled else {", "        guard standing.agentState == .enrolled || true else {"),
                           ("Sources/IonLabController/AgentListener.swift", "        guard try enrollment.isInGoodStanding(serial: session.serial) else {", "        guard true else {")], "item7_"),
 ("M7b a refusal waits for ever", [("Sources/IonLabController/AgentSession.swift", "            self?.close()  // fails the write that is still waiting", "            _ = self")], "item7_aRevokedAgentThatStops"),
 ("M8 messages take no credit", [("Sources/IonLabWire/WireStream.swift", "        case .message:\n            try lock.withLock { try inbound.receive(payloadBytes: payloadBytes, stream: id) }", "        case .message:")], "item8_aPeerFlooding"),
 ("M9 enrollment not idempotent", [("Sources/IonLabController/Store.swift", "if spentFor == keySHA256, state", "if spentFor == \"never\", state")], "item9_enrollmentIsIdempotent"),
 ("M9b no recovery", [("Sources/IonLabController/Enrollment.swift", "            guard now.timeIntervalSince(certificate.notValidAfter) <= config.agentRecoverySeconds else {", "            guard now < certificate.notValidAfter else {")], "item9_anAgentWhoseCertificate"),
 ("M10 agent trusts the timeout", [("Sources/IonLabAgent/Agent.swift", "                try spec.check()\n", ""), ("Sources/IonLabConfig/Values.swift", "        return .milliseconds(Int64(min(seconds, 10 * 365 * 86_400) * 1000))", "        return .milliseconds(Int(seconds * 1000))")], "item10_"),
 ("M11 no package name check", [("Sources/IonLabSpec/StepOperations.swift", "        for name in names { try packageName(name) }", "")], "item11_"),
 ("M12 password in argv", [("Sources/IonLabController/WorkflowOperations.swift", "run(GuestScripts.rustdeskConfigure(idServer: spec.idServer, relayServer: spec.relayServer, key: spec.key),", "run(GuestScript<GuestScripts.Configured>(name: \"rustdesk-configure\", arguments: [spec.idServer ?? \"\", spec.relayServer ?? \"\", spec.key ?? \"\", password]),")], "theRustDeskPassword"),
 ("M8b one credit waiter", [("Sources/IonLabWire/WireStream.swift", "                        creditWaiters[ticket] = continuation", "                        creditWaiters = [0: continuation]")], "twoSendersWaitingForCreditAreBothWoken"),
 ("M1b characters, not bytes", [("Sources/IonLabTransfer/FileTree.swift", "        let bytes = Array(path.utf8)\n        guard bytes.first != slash", "        let bytes = Array(path.utf8)\n        _ = path.split(separator: \"/\")\n        guard bytes.first != slash"), ("Sources/IonLabTransfer/FileTree.swift", "        return try bytes.split(separator: slash, omittingEmptySubsequences: false).map { component in", "        return try path.split(separator: \"/\", omittingEmptySubsequences: false).map { Array($0.utf8) }.map { component in"), ("Sources/IonLabTransfer/FileTree.swift", "    static func isPlainName(_ name: String) -> Bool {\n        !name.isEmpty && !name.utf8.contains(slash)", "    static func isPlainName(_ name: String) -> Bool {\n        !name.isEmpty && !name.contains(\"/\")")], "combiningMarks|theDecoyAttack"),
 ("M14 forward lines unescaped", [("Sources/ionlab/ForwardCommands.swift", 'Terminal.error("ionlab: " + Format.escaped(line))', 'Terminal.error("ionlab: \\(line)")')], "aHostileAgentsAnswers"),
 ("M13 close sends no reset", [("Sources/IonLabWire/WireStream.swift", "        if sendReset { connection.sendReset(stream: id) }", "        _ = sendReset")], "item13_"),
]
only = sys.argv[1:] 
results = []
for name, edits, test in M:
    if only and not any(name.startswith(o) for o in only): continue
    ok = True
    for path, old, new in edits:
        s = open(path).read()
        if old is None: s = new
        elif old not in s:
            results.append((name, f"pattern not found in {path}: the code changed; update this mutation")); ok = False; break
        else: s = s.replace(old, new)
        open(path, 'w').write(s)
    if ok:
        b = subprocess.run("swift build --build-tests 2>&1 | grep -E 'error:' | head -3", shell=True, capture_output=True, text=True)
        if b.stdout.strip():
            results.append((name, "BUILD ERROR " + b.stdout.strip()[:300]))
        else:
            t = subprocess.run(f"timeout 600 swift test --skip-build --filter '{test}' 2>&1 | grep -E '✘ Test run|✔ Test run|Fatal error|Crash'", shell=True, capture_output=True, text=True)
            results.append((name, t.stdout.strip().splitlines()[-1] if t.stdout.strip() else "no result (crashed?)"))
    subprocess.run("git checkout -- Sources", shell=True)
    print(f"{name}: {results[-1][1] if results and results[-1][0] == name else 'not applied'}", flush=True)
survivors = [n for n, r in results if not r.startswith("✘")]
print("\n".join(f"{n}: {r}" for n, r in results))
if survivors:
    sys.exit(f"security-mutations: these mutations survived (their tests still pass): {', '.join(survivors)}")
print(f"security-mutations: all {len(results)} mutations were caught")
