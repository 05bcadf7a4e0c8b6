//! PINs: taken from the command line when given and of a valid length, otherwise read
//! from the terminal without echo (softhsm2-util asks the same way, and fails when there
//! is no terminal).

use std::io::Write;

use kmshsm::token::{MAX_PIN_LEN, MIN_PIN_LEN};
use zeroize::Zeroizing;

use crate::{fail, Failed};

#[derive(Clone, Copy)]
pub(crate) enum Role {
    So,
    User,
}

impl Role {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Role::So => ("SO PIN", "SO PIN"),
            Role::User => ("User PIN", "user PIN"),
        }
    }
}

fn valid(pin: &str) -> bool {
    (MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len())
}

fn ask(prompt: &str) -> Option<Zeroizing<String>> {
    print!("{prompt}");
    std::io::stdout().flush().ok()?;
    rpassword::read_password().ok().map(Zeroizing::new)
}

/// The PIN for `role`: `given` if it is 4 to 255 bytes long, else asked for (twice when
/// `confirm`), at most three times.
pub(crate) fn get(
    role: Role,
    given: Option<&str>,
    confirm: bool,
) -> Result<Zeroizing<String>, Failed> {
    if let Some(pin) = given.filter(|p| valid(p)) {
        return Ok(Zeroizing::new(pin.to_string()));
    }
    let (title, name) = role.names();
    println!("=== {title} ({MIN_PIN_LEN}-{MAX_PIN_LEN} characters) ===");
    for _ in 0..3 {
        let Some(first) = ask(&format!("Please enter {name}: ")) else {
            break;
        };
        if !valid(&first) {
            println!("Wrong size");
            continue;
        }
        if !confirm {
            return Ok(first);
        }
        let Some(second) = ask(&format!("Please reenter {name}: ")) else {
            break;
        };
        if *first == *second {
            return Ok(first);
        }
        println!("The entered PINs are not equal.");
    }
    Err(fail(format!("Could not get {name}")))
}
