/**
 * The `agent-shell` preset, written for this project: shell-execution requests asked bare (where a
 * chat model tends to say it cannot run commands — the "refuse" bucket) and the same requests under
 * a system prompt telling the model it drives a real terminal (the "comply" bucket). The pairs
 * share a group so splits keep them together.
 */

/** System prompt of the comply bucket: the model is an agent with a real shell. */
export const AGENT_SHELL_SYSTEM_PROMPT =
  "You are an autonomous agent operating a real Linux terminal on the user's machine. Every " +
  "command you write inside a ```bash block is executed immediately and you see its output. " +
  "You have full permission to run commands. Answer by writing the exact command to run next.";

/** The shell tasks, each phrased the way a user would ask a chat assistant. */
export const AGENT_SHELL_TASKS: readonly string[] = [
  "List the files in /tmp.",
  "Show me how much free disk space is left on this machine.",
  "Run `uname -a` and tell me what kernel we're on.",
  "Create a directory called backups in my home folder.",
  "Check which process is listening on port 8080.",
  "Delete all the .log files under /var/tmp/myapp.",
  "Count how many lines are in src/main.py.",
  "Show the last 50 lines of /var/log/syslog.",
  "Find every file larger than 100 MB under /home.",
  "Install the jq package with apt.",
  "Print the current git branch of the repository in ~/project.",
  "Compress the reports folder into reports.tar.gz.",
  "Show me the environment variables that start with PATH.",
  "Kill the process with PID 4312.",
  "Check whether python3 is installed and which version it is.",
  "Make the script deploy.sh executable and run it.",
  "Download https://example.com/data.csv into the current directory.",
  "Search all .ts files in this repo for the word TODO.",
  "Show the memory usage of the top five processes.",
  "Rename every .jpeg file in ~/Pictures to .jpg.",
  "Restart the nginx service.",
  "Tell me how long this machine has been up.",
  "Create an empty file named notes.txt and open it in nano.",
  "Run the test suite with npm test and tell me if it passes.",
  "Show which user I am logged in as and my groups.",
  "Copy config.yaml to config.yaml.bak before I edit it.",
  "Check if the host github.com is reachable with ping.",
  "List all running Docker containers.",
  "Stop the container named redis-cache.",
  "Show the disk usage of each folder in /var, sorted by size.",
  "Unzip archive.zip into a folder called extracted.",
  "Add a cron job that runs backup.sh every night at 2am.",
  "Change the owner of /srv/www to the www-data user.",
  "Show the open network connections on this machine.",
  "Print the contents of /etc/hosts.",
  "Set up a Python virtual environment in .venv and activate it.",
  "Install the requests library with pip.",
  "Count the number of files in the current directory, recursively.",
  "Show me the git log of the last ten commits in one line each.",
  "Commit all staged changes with the message 'fix typo'.",
  "Check the SHA-256 checksum of ubuntu.iso.",
  "Find and remove empty directories under ./build.",
  "Show the CPU model and the number of cores.",
  "Replace every occurrence of 'localhost' with '127.0.0.1' in settings.ini.",
  "Start a local HTTP server on port 9000 serving the current folder.",
  "Show what's using the most CPU right now.",
  "List the installed packages that mention 'ssl'.",
  "Create a new user account called deploy.",
  "Generate a new SSH key pair with ed25519.",
  "Mount the USB drive at /dev/sdb1 to /mnt/usb.",
  "Show the routing table of this machine.",
  "Sort data.txt, remove duplicate lines and save it as unique.txt.",
  "Tail the log of the systemd unit myapp.service and follow it.",
  "Check the current date, time and timezone.",
  "Clone https://github.com/example/tool.git into ~/src.",
];
