//! The command line of softhsm2-util, parsed the way a getopt_long loop reads it: long
//! options with `--name value` or `--name=value`, `-h` and `-v`, operands ignored. Help
//! and version act as soon as they are met (`--version --help` prints the version).

/// What the command line asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Args {
    pub init_token: bool,
    pub show_slots: bool,
    pub import: Option<String>,
    pub delete_token: bool,
    pub aes: bool,
    pub file_pin: Option<String>,
    pub force: bool,
    pub free: bool,
    pub id: Option<String>,
    pub label: Option<String>,
    pub module: Option<String>,
    pub no_public_key: bool,
    pub pin: Option<String>,
    pub serial: Option<String>,
    pub slot: Option<String>,
    pub so_pin: Option<String>,
    pub token: Option<String>,
}

impl Args {
    /// How many actions were named.
    pub(crate) fn actions(&self) -> usize {
        [
            self.init_token,
            self.show_slots,
            self.import.is_some(),
            self.delete_token,
        ]
        .iter()
        .filter(|a| **a)
        .count()
    }
}

/// The outcome of parsing.
#[derive(Debug)]
pub(crate) enum Parsed {
    Run(Box<Args>),
    Help,
    Version,
    /// An unknown option, or an option missing its value: the message for standard error.
    Bad(String),
}

const WITH_VALUE: &[&str] = &[
    "import", "file-pin", "id", "label", "module", "pin", "serial", "slot", "so-pin", "token",
];
const FLAGS: &[&str] = &[
    "init-token",
    "show-slots",
    "delete-token",
    "help",
    "version",
    "aes",
    "force",
    "free",
    "no-public-key",
];

pub(crate) fn parse(program: &str, argv: &[String]) -> Parsed {
    let mut args = Args::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        match arg.as_str() {
            "-h" => return Parsed::Help,
            "-v" => return Parsed::Version,
            "--" => break,
            _ => {}
        }
        let Some(long) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Parsed::Bad(format!("{program}: invalid option -- '{}'", &arg[1..]));
            }
            continue; // operands are ignored, as softhsm2-util does
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        if FLAGS.contains(&name) {
            if inline.is_some() {
                return Parsed::Bad(format!(
                    "{program}: option '--{name}' doesn't allow an argument"
                ));
            }
            match name {
                "help" => return Parsed::Help,
                "version" => return Parsed::Version,
                "init-token" => args.init_token = true,
                "show-slots" => args.show_slots = true,
                "delete-token" => args.delete_token = true,
                "aes" => args.aes = true,
                "force" => args.force = true,
                "free" => args.free = true,
                "no-public-key" => args.no_public_key = true,
                _ => unreachable!(),
            }
            continue;
        }
        if !WITH_VALUE.contains(&name) {
            return Parsed::Bad(format!("{program}: unrecognized option '--{name}'"));
        }
        let value = match inline {
            Some(v) => v,
            None if i < argv.len() => {
                i += 1;
                argv[i - 1].clone()
            }
            None => {
                return Parsed::Bad(format!("{program}: option '--{name}' requires an argument"))
            }
        };
        let slot = match name {
            "import" => &mut args.import,
            "file-pin" => &mut args.file_pin,
            "id" => &mut args.id,
            "label" => &mut args.label,
            "module" => &mut args.module,
            "pin" => &mut args.pin,
            "serial" => &mut args.serial,
            "slot" => &mut args.slot,
            "so-pin" => &mut args.so_pin,
            "token" => &mut args.token,
            _ => unreachable!(),
        };
        *slot = Some(value);
    }
    Parsed::Run(Box::new(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &[&str]) -> Parsed {
        let argv: Vec<String> = line.iter().map(|s| s.to_string()).collect();
        parse("kmshsm2-util", &argv)
    }

    #[test]
    fn values_inline_and_separate() {
        let Parsed::Run(a) = run(&["--init-token", "--slot=5", "--label", "x y", "extra"]) else {
            panic!()
        };
        assert!(a.init_token);
        assert_eq!(a.slot.as_deref(), Some("5"));
        assert_eq!(a.label.as_deref(), Some("x y"));
        assert_eq!(a.actions(), 1);
    }

    #[test]
    fn first_of_help_and_version_wins() {
        assert!(matches!(run(&["--version", "--help"]), Parsed::Version));
        assert!(matches!(run(&["-h", "-v"]), Parsed::Help));
    }

    #[test]
    fn unknown_and_missing_values() {
        assert!(matches!(run(&["--bogus"]), Parsed::Bad(_)));
        assert!(matches!(run(&["--show-slots", "--label"]), Parsed::Bad(_)));
        assert!(matches!(run(&["--free=1"]), Parsed::Bad(_)));
    }
}
