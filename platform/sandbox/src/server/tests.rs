//! The sandbox's request loop and its file handling, without creating a container: what
//! it answers to unreadable, unknown and failing requests, that a failed create leaves
//! nothing behind, and that it ends when its control socket closes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use super::*;
use crate::ContainerNetwork;
use crate::test_spec::spec;

fn scratch(name: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("kiln-sandbox-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&folder);
    fs::create_dir_all(folder.join("bundles")).unwrap();
    folder
}

fn reply(reader: &mut impl BufRead) -> Reply {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a reply line");
    match serde_json::from_str(&line).expect("a message") {
        Message::Reply(reply) => reply,
        other => panic!("not a reply: {other:?}"),
    }
}

#[test]
fn requests_get_replies_by_id_and_the_loop_ends_with_its_socket() {
    let state_root = scratch("loop");
    let (kilnd, sandbox_end) = UnixStream::pair().unwrap();
    let exits = ChildExits::install().unwrap();
    let root = state_root.clone();
    let served = std::thread::spawn(move || {
        let mut sandbox = SandboxProcess {
            state_root: root,
            running: HashMap::new(),
        };
        serve_requests(&mut sandbox, &exits, sandbox_end)
    });
    let mut missing_output = spec(ContainerNetwork::Isolated);
    missing_output.stdout_path = state_root.join("no-such-fifo");
    let requests = [
        "this is not JSON\n".to_owned(),
        serde_json::to_string(&Request {
            id: 7,
            command: Command::Delete {
                container: "never-made".into(),
            },
        })
        .unwrap()
            + "\n",
        serde_json::to_string(&Request {
            id: 8,
            command: Command::Create(Box::new(missing_output)),
        })
        .unwrap()
            + "\n",
    ];
    let mut writer = kilnd.try_clone().unwrap();
    // All at once: lines already buffered are served without the socket turning readable.
    writer.write_all(requests.concat().as_bytes()).unwrap();
    let mut reader = BufReader::new(kilnd);
    let unreadable = reply(&mut reader);
    assert_eq!(unreadable.id, 0);
    assert!(unreadable.outcome.unwrap_err().starts_with("unreadable request"));
    let deleted = reply(&mut reader);
    assert_eq!((deleted.id, deleted.outcome), (7, Ok(0)));
    let failed = reply(&mut reader);
    assert_eq!(failed.id, 8);
    let error = failed.outcome.unwrap_err();
    assert!(error.starts_with("open output"), "{error}");
    assert!(
        !state_root.join("bundles/c1").exists(),
        "a failed create left its bundle"
    );
    drop(writer);
    drop(reader);
    served.join().unwrap().expect("the loop ends cleanly at EOF");
    fs::remove_dir_all(&state_root).unwrap();
}

#[test]
fn output_is_opened_never_created_and_left_blocking() {
    let folder = scratch("output");
    let missing = folder.join("gone.fifo");
    assert_eq!(
        open_output(&missing).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    assert!(!missing.exists(), "a missing output was created");
    let log = folder.join("function.log");
    fs::write(&log, "before\n").unwrap();
    let mut file = open_output(&log).unwrap();
    let flags = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        nix::fcntl::FcntlArg::F_GETFL,
    )
    .unwrap();
    assert!(!nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK));
    file.write_all(b"after\n").unwrap();
    assert_eq!(fs::read_to_string(&log).unwrap(), "before\nafter\n");
    fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn leftovers_of_a_killed_sandbox_are_cleared_and_other_folders_kept() {
    let state_root = scratch("leftovers");
    fs::create_dir_all(state_root.join("bundles/old-container")).unwrap();
    fs::write(state_root.join("bundles/old-container/config.json"), "{}").unwrap();
    fs::create_dir_all(state_root.join("not-a-container")).unwrap();
    let mut sandbox = SandboxProcess {
        state_root: state_root.clone(),
        running: HashMap::new(),
    };
    sandbox.delete_leftovers();
    assert_eq!(fs::read_dir(state_root.join("bundles")).unwrap().count(), 0);
    assert!(state_root.join("not-a-container").is_dir());
    fs::remove_dir_all(&state_root).unwrap();
}
